//! Test reports: finding report files and reading JUnit XML into counts and failures.
//!
//! Report files are found with the same glob rules as artifacts (see [`crate::artifacts`]).
//! JUnit XML is read as a stream of events, so a report's size costs time, not memory: only
//! the first [`MAX_FAILURES`] failures are kept, each message cut at [`MAX_MESSAGE`] bytes.
//! (One caveat: quick-xml holds a single text node whole while reading it, so a giant
//! `<system-out>` costs its own size once.)
//!
//! Counts come from the `<testcase>` elements, never from the `tests=`/`failures=` attributes
//! of `<testsuite>`, which tools disagree on (errors counted or not, skipped counted or not).
//! A testcase with `<failure>` or `<error>` is failed (the summary has no separate error
//! count); one with `<skipped/>` and no failure is skipped; any other is passed.

use std::fs::File;
use std::io::{self, BufRead, BufReader};
use std::path::{Path, PathBuf};

use quick_xml::XmlVersion;
use quick_xml::events::{BytesStart, Event};
use slipway_proto::{ReportSummary, TestFailure};

use crate::artifacts::{self, ArtifactError, Selection};

/// Failures kept per report; the counts still cover every testcase.
pub const MAX_FAILURES: usize = 100;
/// Longest failure message kept, in bytes.
pub const MAX_MESSAGE: usize = 4 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error(transparent)]
    Select(#[from] ArtifactError),
    #[error("cannot read {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("malformed XML at byte {position}: {source}")]
    Xml {
        position: u64,
        #[source]
        source: quick_xml::Error,
    },
    #[error("the file ends at byte {position} inside <{element}>")]
    Truncated { position: u64, element: String },
    #[error("not a JUnit XML report: no <testsuites> or <testsuite> element")]
    NotJunit,
}

/// The report files a `reports` group names, sorted. Matching nothing is not an error here
/// (an absent report is a warning for [`summarize`]); bad patterns are.
pub fn find(
    workspace: &Path,
    files: &[String],
    base_directory: Option<&str>,
) -> Result<Vec<PathBuf>, ReportError> {
    let sel = Selection {
        files,
        base_directory,
        discard_paths: false,
        exclude_paths: &[],
    };
    match artifacts::select(workspace, &sel) {
        Ok(found) => Ok(found.into_iter().map(|f| f.source).collect()),
        Err(ArtifactError::NoMatch { .. } | ArtifactError::NoBaseDirectory(_)) => Ok(Vec::new()),
        Err(e) => Err(e.into()),
    }
}

/// Reads one JUnit XML document (the shapes of pytest, Maven Surefire, jest-junit, Gradle,
/// go-junit-report: `<testsuites>` or a bare `<testsuite>`, suites nested or not).
pub fn parse_junit<R: BufRead>(name: &str, r: R) -> Result<ReportSummary, ReportError> {
    let mut reader = quick_xml::Reader::from_reader(r);
    let mut summary = ReportSummary {
        name: name.to_string(),
        format: "JUNITXML".to_string(),
        ..Default::default()
    };
    let mut state = Junit::default();
    let mut buf = Vec::new();
    loop {
        let xml_err = |reader: &quick_xml::Reader<R>, source| ReportError::Xml {
            position: reader.error_position(),
            source,
        };
        let event = match reader.read_event_into(&mut buf) {
            Ok(e) => e,
            Err(source) => return Err(xml_err(&reader, source)),
        };
        let result = match event {
            Event::Start(e) => {
                state.open.push(e.name().as_ref().to_string());
                state.start(&e, false, &mut summary)
            }
            Event::Empty(e) => state.start(&e, true, &mut summary),
            Event::End(e) => {
                state.open.pop();
                state.end(e.name().as_ref(), &mut summary);
                Ok(())
            }
            Event::Text(t) => {
                state.text(&t.xml10_content());
                Ok(())
            }
            Event::CData(t) => {
                state.text(&t.xml10_content());
                Ok(())
            }
            Event::GeneralRef(r) => {
                if state.collecting.is_some() {
                    match r.resolve_char_ref() {
                        Ok(Some(c)) => state.text(c.encode_utf8(&mut [0; 4])),
                        Ok(None) => match quick_xml::escape::resolve_xml_entity(&r) {
                            Some(s) => state.text(s),
                            None => state.text(&format!("&{};", &*r)),
                        },
                        Err(source) => Err(xml_err(&reader, source))?,
                    }
                }
                Ok(())
            }
            Event::Eof => break,
            Event::Comment(_) | Event::Decl(_) | Event::PI(_) | Event::DocType(_) => Ok(()),
        };
        if let Err(source) = result {
            return Err(xml_err(&reader, source));
        }
        buf.clear();
    }
    if let Some(element) = state.open.pop() {
        return Err(ReportError::Truncated {
            position: reader.buffer_position(),
            element,
        });
    }
    if !state.saw_root {
        return Err(ReportError::NotJunit);
    }
    Ok(summary)
}

#[derive(Default)]
struct Junit {
    /// Names of the open elements, for the truncation error.
    open: Vec<String>,
    /// Names of the enclosing `<testsuite>`s, innermost last.
    suites: Vec<String>,
    saw_root: bool,
    case: Option<Case>,
    /// Depth (in `open`) of the `<failure>`/`<error>` whose text is the message.
    collecting: Option<usize>,
}

#[derive(PartialEq, Eq)]
enum Outcome {
    Passed,
    Failed,
    Skipped,
}

struct Case {
    suite: String,
    name: String,
    outcome: Outcome,
    message: Option<String>,
    text: String,
}

fn attr(e: &BytesStart, key: &str) -> Result<Option<String>, quick_xml::Error> {
    match e.try_get_attribute(key)? {
        Some(a) => Ok(Some(
            a.normalized_value(XmlVersion::Implicit1_0)?.into_owned(),
        )),
        None => Ok(None),
    }
}

/// Cuts `s` to at most `max` bytes on a character boundary.
fn truncate(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut cut = max;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
    }
    s
}

impl Junit {
    fn start(
        &mut self,
        e: &BytesStart,
        empty: bool,
        summary: &mut ReportSummary,
    ) -> Result<(), quick_xml::Error> {
        match e.name().as_ref() {
            "testsuites" => self.saw_root = true,
            "testsuite" => {
                self.saw_root = true;
                if !empty {
                    self.suites.push(attr(e, "name")?.unwrap_or_default());
                }
            }
            "testcase" if self.case.is_none() => {
                // classname names the test's class or module (pytest's suite is just "pytest").
                let suite = attr(e, "classname")?
                    .filter(|c| !c.is_empty())
                    .or_else(|| self.suites.last().cloned())
                    .unwrap_or_default();
                self.case = Some(Case {
                    suite,
                    name: attr(e, "name")?.unwrap_or_default(),
                    outcome: Outcome::Passed,
                    message: None,
                    text: String::new(),
                });
                if empty {
                    self.finish_case(summary);
                }
            }
            "failure" | "error" => {
                let Some(case) = &mut self.case else {
                    return Ok(());
                };
                let first = case.outcome != Outcome::Failed;
                case.outcome = Outcome::Failed;
                if !first {
                    return Ok(());
                }
                match attr(e, "message")?.filter(|m| !m.trim().is_empty()) {
                    Some(m) => case.message = Some(truncate(m, MAX_MESSAGE)),
                    None if !empty => self.collecting = Some(self.open.len()),
                    None => case.message = attr(e, "type")?,
                }
            }
            "skipped" => {
                if let Some(case) = &mut self.case
                    && case.outcome == Outcome::Passed
                {
                    case.outcome = Outcome::Skipped;
                }
            }
            // properties, system-out, flakyFailure, rerunFailure and anything else: no effect.
            _ => {}
        }
        Ok(())
    }

    fn end(&mut self, name: &str, summary: &mut ReportSummary) {
        match name {
            "testsuite" => {
                self.suites.pop();
            }
            "testcase" => self.finish_case(summary),
            // `open` was already popped, so the collecting element was one deeper.
            "failure" | "error" if self.collecting == Some(self.open.len() + 1) => {
                self.collecting = None;
                if let Some(case) = &mut self.case {
                    let first_line = case
                        .text
                        .lines()
                        .map(str::trim)
                        .find(|l| !l.is_empty())
                        .unwrap_or_default();
                    case.message = Some(first_line.to_string());
                    case.text = String::new();
                }
            }
            _ => {}
        }
    }

    fn text(&mut self, s: &str) {
        if self.collecting.is_none() {
            return;
        }
        if let Some(case) = &mut self.case {
            let room = MAX_MESSAGE.saturating_sub(case.text.len());
            if room > 0 {
                case.text.push_str(&truncate(s.to_string(), room));
            }
        }
    }

    fn finish_case(&mut self, summary: &mut ReportSummary) {
        let Some(case) = self.case.take() else {
            return;
        };
        self.collecting = None;
        summary.total += 1;
        match case.outcome {
            Outcome::Passed => summary.passed += 1,
            Outcome::Skipped => summary.skipped += 1,
            Outcome::Failed => {
                summary.failed += 1;
                if summary.failures.len() < MAX_FAILURES {
                    summary.failures.push(TestFailure {
                        suite: case.suite,
                        name: case.name,
                        message: case.message.unwrap_or_default(),
                    });
                }
            }
        }
    }
}

/// CodeBuild's report formats that are test results (not code coverage).
const TEST_FORMATS: &[&str] = &[
    "JUNITXML",
    "CUCUMBERJSON",
    "NUNITXML",
    "NUNIT3XML",
    "TESTNGXML",
    "VISUALSTUDIOTRX",
];
const COVERAGE_FORMATS: &[&str] = &["CLOVERXML", "COBERTURAXML", "JACOCOXML", "SIMPLECOV"];

/// Reads every file of one `reports` group into one summary. Problems that should not fail a
/// build (a format not read yet, an unreadable or malformed file, no file found) come back as
/// warnings, each naming the report and file.
pub fn summarize(
    workspace: &Path,
    name: &str,
    files: &[String],
    base_directory: Option<&str>,
    format: &str,
) -> (ReportSummary, Vec<String>) {
    let format = format.trim().to_ascii_uppercase();
    let mut summary = ReportSummary {
        name: name.to_string(),
        format: format.clone(),
        ..Default::default()
    };
    let mut warnings = Vec::new();
    let paths = match find(workspace, files, base_directory) {
        Ok(paths) => paths,
        Err(e) => {
            warnings.push(format!("report `{name}`: {e}"));
            return (summary, warnings);
        }
    };
    if paths.is_empty() {
        let base = base_directory
            .map(|b| format!(" in base directory `{b}`"))
            .unwrap_or_default();
        warnings.push(format!(
            "report `{name}`: no report files matched {:?}{base}",
            files
        ));
        return (summary, warnings);
    }
    if format != "JUNITXML" {
        let what = if TEST_FORMATS.contains(&format.as_str()) {
            "is not read yet"
        } else if COVERAGE_FORMATS.contains(&format.as_str()) {
            "is a code coverage format, not read yet"
        } else {
            "is not a CodeBuild report format"
        };
        warnings.push(format!(
            "report `{name}`: file format {format} {what}; counts omitted"
        ));
        return (summary, warnings);
    }
    for path in paths {
        let shown = path
            .strip_prefix(workspace)
            .unwrap_or(&path)
            .display()
            .to_string();
        let parsed = File::open(&path)
            .map_err(|source| ReportError::Io {
                path: path.clone(),
                source,
            })
            .and_then(|f| parse_junit(name, BufReader::new(f)));
        match parsed {
            Ok(one) => merge(&mut summary, one),
            Err(e) => warnings.push(format!("report `{name}`: {shown}: {e}")),
        }
    }
    (summary, warnings)
}

fn merge(into: &mut ReportSummary, one: ReportSummary) {
    into.total += one.total;
    into.passed += one.passed;
    into.failed += one.failed;
    into.skipped += one.skipped;
    let room = MAX_FAILURES.saturating_sub(into.failures.len());
    into.failures.extend(one.failures.into_iter().take(room));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::artifacts::test_dir::TestDir;

    fn parse(xml: &str) -> ReportSummary {
        parse_junit("unit", xml.as_bytes()).unwrap()
    }

    fn counts(s: &ReportSummary) -> (u64, u64, u64, u64) {
        (s.total, s.passed, s.failed, s.skipped)
    }

    const PYTEST: &str = r#"<?xml version="1.0" encoding="utf-8"?>
<testsuites name="pytest tests"><testsuite name="pytest" errors="1" failures="1" skipped="1" tests="5" time="0.071" timestamp="2026-11-22T10:00:00.000000+00:00" hostname="ci"><testcase classname="tests.test_math" name="test_add" time="0.001" /><testcase classname="tests.test_math" name="test_div" time="0.002"><failure message="ZeroDivisionError: division by zero">def test_div():
&gt;       assert 1 / 0
E       ZeroDivisionError: division by zero

tests/test_math.py:7: ZeroDivisionError</failure></testcase><testcase classname="tests.test_math" name="test_skip" time="0.000"><skipped type="pytest.skip" message="not on linux">tests/test_math.py:10: not on linux</skipped></testcase><testcase classname="tests.test_io" name="test_fixture" time="0.003"><error message="failed on setup with &quot;FileNotFoundError: data.csv&quot;">@pytest.fixture
def data():
&gt;   open("data.csv")</error></testcase><testcase classname="tests.test_io" name="test_read" time="0.004"><system-out>hello</system-out></testcase></testsuite></testsuites>"#;

    #[test]
    fn pytest_shape() {
        let s = parse(PYTEST);
        assert_eq!(counts(&s), (5, 2, 2, 1));
        assert_eq!(s.name, "unit");
        assert_eq!(s.format, "JUNITXML");
        assert_eq!(
            s.failures,
            [
                TestFailure {
                    suite: "tests.test_math".into(),
                    name: "test_div".into(),
                    message: "ZeroDivisionError: division by zero".into(),
                },
                TestFailure {
                    suite: "tests.test_io".into(),
                    name: "test_fixture".into(),
                    message: r#"failed on setup with "FileNotFoundError: data.csv""#.into(),
                },
            ]
        );
    }

    const SUREFIRE: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<testsuite xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:noNamespaceSchemaLocation="https://maven.apache.org/surefire/maven-surefire-plugin/xsd/surefire-test-report-3.0.xsd" version="3.0" name="com.example.CalculatorTest" time="0.045" tests="4" errors="0" skipped="1" failures="1">
  <properties>
    <property name="java.version" value="17.0.9"/>
    <property name="os.name" value="Linux"/>
  </properties>
  <testcase name="adds" classname="com.example.CalculatorTest" time="0.002"/>
  <testcase name="divides" classname="com.example.CalculatorTest" time="0.011">
    <failure message="expected: &lt;2&gt; but was: &lt;3&gt;" type="org.opentest4j.AssertionFailedError"><![CDATA[org.opentest4j.AssertionFailedError: expected: <2> but was: <3>
	at com.example.CalculatorTest.divides(CalculatorTest.java:21)
]]></failure>
    <system-out><![CDATA[dividing 6 by 2
]]></system-out>
  </testcase>
  <testcase name="flaky" classname="com.example.CalculatorTest" time="0.003">
    <flakyFailure message="timeout" type="java.util.concurrent.TimeoutException"/>
  </testcase>
  <testcase name="ignored" classname="com.example.CalculatorTest" time="0">
    <skipped message="@Disabled"/>
  </testcase>
</testsuite>
"#;

    #[test]
    fn maven_surefire_shape() {
        let s = parse(SUREFIRE);
        assert_eq!(
            counts(&s),
            (4, 2, 1, 1),
            "a flaky test that passed on rerun passed"
        );
        assert_eq!(s.failures[0].suite, "com.example.CalculatorTest");
        assert_eq!(s.failures[0].name, "divides");
        assert_eq!(s.failures[0].message, "expected: <2> but was: <3>");
    }

    const JEST: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<testsuites name="jest tests" tests="3" failures="1" errors="0" time="1.234">
  <testsuite name="math" errors="0" failures="1" skipped="0" timestamp="2026-11-22T10:00:00" time="0.5" tests="3">
    <testcase classname="math adds" name="math adds" time="0.002">
    </testcase>
    <testcase classname="math divides" name="math divides" time="0.003">
      <failure>Error: expect(received).toBe(expected) // Object.is equality

Expected: 2
Received: 3
    at Object.&lt;anonymous&gt; (/app/math.test.js:9:17)</failure>
    </testcase>
    <testcase classname="math todo" name="math todo" time="0">
      <skipped/>
    </testcase>
  </testsuite>
</testsuites>"#;

    #[test]
    fn jest_junit_shape_takes_the_first_line_of_the_text() {
        let s = parse(JEST);
        assert_eq!(counts(&s), (3, 1, 1, 1));
        assert_eq!(
            s.failures[0].message,
            "Error: expect(received).toBe(expected) // Object.is equality"
        );
    }

    #[test]
    fn counts_come_from_testcases_not_attributes() {
        let s = parse(
            r#"<testsuite name="lies" tests="99" failures="0" errors="7" skipped="3">
                 <testcase name="a"/><testcase name="b"><error type="Boom"/></testcase>
               </testsuite>"#,
        );
        assert_eq!(counts(&s), (2, 1, 1, 0));
        assert_eq!(
            s.failures[0].suite, "lies",
            "no classname: the enclosing suite"
        );
        assert_eq!(
            s.failures[0].message, "Boom",
            "no message or text: the type"
        );
    }

    #[test]
    fn nested_suites_name_the_innermost() {
        let s = parse(
            r#"<testsuites><testsuite name="outer">
                 <testsuite name="inner"><testcase name="x"><failure message="m"/></testcase></testsuite>
                 <testcase name="y"><failure message="n"/></testcase>
               </testsuite></testsuites>"#,
        );
        assert_eq!(counts(&s), (2, 0, 2, 0));
        let suites: Vec<&str> = s.failures.iter().map(|f| f.suite.as_str()).collect();
        assert_eq!(suites, ["inner", "outer"]);
    }

    #[test]
    fn failure_beats_skipped_and_counts_once() {
        let s = parse(
            r#"<testsuite><testcase name="x"><skipped/><failure message="first"/><error message="second"/></testcase></testsuite>"#,
        );
        assert_eq!(counts(&s), (1, 0, 1, 0));
        assert_eq!(s.failures[0].message, "first");
    }

    #[test]
    fn failures_and_messages_are_bounded() {
        let mut xml = String::from("<testsuite name='big'>");
        for i in 0..250 {
            xml.push_str(&format!(
                "<testcase name='t{i}'><failure>{}</failure></testcase>",
                "é".repeat(5000)
            ));
        }
        xml.push_str("</testsuite>");
        let s = parse(&xml);
        assert_eq!(counts(&s), (250, 0, 250, 0));
        assert_eq!(s.failures.len(), MAX_FAILURES);
        assert!(s.failures.iter().all(|f| f.message.len() <= MAX_MESSAGE));
        assert!(s.failures[0].message.len() > MAX_MESSAGE - 4);
    }

    #[test]
    fn malformed_xml_names_the_byte_position() {
        let e = parse_junit("u", &b"<testsuite><testcase name='a'></testsuite>"[..]).unwrap_err();
        assert!(matches!(e, ReportError::Xml { .. }), "{e}");
        assert!(e.to_string().starts_with("malformed XML at byte "), "{e}");

        let e = parse_junit(
            "u",
            &b"<testsuite><testcase name='a' oops></testcase></testsuite>"[..],
        )
        .unwrap_err();
        assert!(matches!(e, ReportError::Xml { .. }), "{e}");
    }

    #[test]
    fn truncated_file_is_an_error() {
        let e = parse_junit(
            "u",
            &b"<testsuites><testsuite name='s'><testcase name='a'/>"[..],
        )
        .unwrap_err();
        assert!(
            matches!(&e, ReportError::Truncated { element, .. } if element == "testsuite"),
            "{e}"
        );
    }

    #[test]
    fn empty_or_foreign_documents_are_not_junit() {
        for doc in ["", "   \n", "<?xml version='1.0'?><html><body/></html>"] {
            let e = parse_junit("u", doc.as_bytes()).unwrap_err();
            assert!(matches!(e, ReportError::NotJunit), "{doc:?}: {e}");
        }
        let s = parse("<testsuites/>");
        assert_eq!(counts(&s), (0, 0, 0, 0));
    }

    #[test]
    fn summarize_merges_files_and_warns_per_bad_file() {
        let t = TestDir::new();
        t.file("reports/pytest.xml", PYTEST);
        t.file("reports/nested/TEST-calc.xml", SUREFIRE);
        t.file("reports/broken.xml", "<testsuite><testcase>");
        t.file("reports/notes.txt", "not a report");
        let (s, warnings) = summarize(
            t.path(),
            "unit",
            &["**/*.xml".to_string()],
            Some("reports"),
            "junitxml",
        );
        assert_eq!(counts(&s), (9, 4, 3, 2));
        assert_eq!(s.failures.len(), 3);
        assert_eq!(s.format, "JUNITXML");
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(
            warnings[0].starts_with("report `unit`: reports/broken.xml: the file ends at byte"),
            "{warnings:?}"
        );
    }

    #[test]
    fn summarize_warns_on_formats_not_read_yet_and_missing_files() {
        let t = TestDir::new();
        t.file("TestResult.xml", "<test-run/>");
        let (s, warnings) = summarize(t.path(), "n", &["*.xml".into()], None, "NUNIT3XML");
        assert_eq!(counts(&s), (0, 0, 0, 0));
        assert_eq!(
            warnings,
            ["report `n`: file format NUNIT3XML is not read yet; counts omitted"]
        );
        let (_, warnings) = summarize(t.path(), "n", &["*.xml".into()], None, "COBERTURAXML");
        assert!(warnings[0].contains("code coverage"), "{warnings:?}");
        let (_, warnings) = summarize(t.path(), "n", &["out/*.xml".into()], None, "JUNITXML");
        assert_eq!(
            warnings,
            [r#"report `n`: no report files matched ["out/*.xml"]"#]
        );
        let (_, warnings) = summarize(t.path(), "n", &["../x".into()], None, "JUNITXML");
        assert!(warnings[0].contains("goes outside"), "{warnings:?}");
    }

    #[test]
    fn find_returns_sorted_host_paths() {
        let t = TestDir::new();
        t.file("b/TEST-2.xml", "");
        t.file("a/TEST-1.xml", "");
        let found = find(t.path(), &["**/TEST-*.xml".into()], None).unwrap();
        assert_eq!(found.len(), 2);
        assert!(found[0].ends_with("a/TEST-1.xml") && found[1].ends_with("b/TEST-2.xml"));
        assert!(found[0].is_absolute());
        assert!(
            find(t.path(), &["*.xml".into()], Some("missing"))
                .unwrap()
                .is_empty()
        );
    }
}
