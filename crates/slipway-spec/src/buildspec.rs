//! AWS CodeBuild buildspec.yml (versions 0.1 and 0.2): parsing and validation.
