//! Test reports: finding report files and reading JUnit XML into counts and failures.
