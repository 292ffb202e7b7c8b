//! The REST client shared by the verbs that talk to a Slipway server: `--server` and
//! `--json`, URLs built from percent-encoded segments, API errors mapped to exit codes
//! (4xx: 2, 5xx and an unreachable server: 1), `project#number` references, and the
//! small table and time helpers the verbs print with.

use std::fmt;
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use reqwest::{Method, RequestBuilder, Response, StatusCode, Url};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use slipway_proto::api::{ApiError, Execution, ExecutionDetail, Page};

use super::UsageError;

pub const DEFAULT_SERVER: &str = "http://127.0.0.1:8080";

/// Options every client verb takes.
#[derive(clap::Args, Debug, Clone)]
pub struct ServerArgs {
    /// The Slipway server's URL.
    #[arg(long, global = true, env = "SLIPWAY_SERVER", value_name = "URL", default_value = DEFAULT_SERVER)]
    pub server: String,
    /// Print the API's JSON instead of tables.
    #[arg(long, global = true)]
    pub json: bool,
}

/// The server could not be reached (connection refused, DNS, a reset before any answer).
#[derive(Debug)]
pub struct Unreachable {
    pub server: String,
    pub cause: String,
}

impl fmt::Display for Unreachable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "cannot reach the Slipway server at {}: {} (start one with `slipway server` or `slipway up`)",
            self.server, self.cause
        )
    }
}

impl std::error::Error for Unreachable {}

/// The server answered 5xx: its failure, not the request's (exit 1).
#[derive(Debug)]
pub struct ServerFailed(pub String);

impl fmt::Display for ServerFailed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ServerFailed {}

/// A decoded JSON answer: the typed value and the JSON as sent (for `--json`).
pub struct Body<T> {
    pub value: T,
    pub json: Value,
}

/// A connection to one server.
pub struct Client {
    base: Url,
    http: reqwest::Client,
    pub json: bool,
}

impl Client {
    pub fn new(args: &ServerArgs) -> anyhow::Result<Client> {
        // `host:port` alone means plain http, as the server itself listens.
        let given = if args.server.contains("://") {
            args.server.clone()
        } else {
            format!("http://{}", args.server)
        };
        let base = Url::parse(&given)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.has_host())
            .ok_or_else(|| {
                UsageError(format!(
                    "--server `{}`: expected a URL such as {DEFAULT_SERVER}",
                    args.server
                ))
            })?;
        let http = reqwest::Client::builder()
            .user_agent(concat!("slipway/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(10))
            .build()
            .context("creating the HTTP client")?;
        Ok(Client {
            base,
            http,
            json: args.json,
        })
    }

    /// The server as the user gave it, for messages.
    pub fn server(&self) -> String {
        self.base.as_str().trim_end_matches('/').to_string()
    }

    /// `<server>/api/v1/<segments...>`, each segment percent-encoded (a `/` in an action's
    /// name stays inside its segment).
    pub fn url(&self, segments: &[&str]) -> Url {
        let mut u = self.base.clone();
        if let Ok(mut p) = u.path_segments_mut() {
            p.pop_if_empty().extend(["api", "v1"]).extend(segments);
        }
        u
    }

    /// The URL of one execution, or of something below it.
    pub fn execution_url(&self, project: &str, number: u64, rest: &[&str]) -> Url {
        let n = number.to_string();
        let mut segs = vec!["projects", project, "executions", n.as_str()];
        segs.extend_from_slice(rest);
        self.url(&segs)
    }

    pub fn request(&self, method: Method, url: Url) -> RequestBuilder {
        self.http.request(method, url)
    }

    /// Sends a request; a 2xx answer is returned, anything else becomes the error the exit
    /// code follows from.
    pub async fn send(&self, req: RequestBuilder) -> anyhow::Result<Response> {
        let resp = req.send().await.map_err(|e| self.unreachable(&e))?;
        let status = resp.status();
        if status.is_success() {
            return Ok(resp);
        }
        let text = resp.text().await.unwrap_or_default();
        Err(api_error(status, &text))
    }

    /// The error for a request that got no answer.
    pub fn unreachable(&self, e: &reqwest::Error) -> anyhow::Error {
        Unreachable {
            server: self.server(),
            cause: root_cause(e),
        }
        .into()
    }

    pub async fn get<T: DeserializeOwned>(&self, url: Url) -> anyhow::Result<Body<T>> {
        let resp = self.send(self.request(Method::GET, url)).await?;
        self.decode(resp).await
    }

    pub async fn post<T: DeserializeOwned, B: Serialize>(
        &self,
        url: Url,
        body: Option<&B>,
    ) -> anyhow::Result<Body<T>> {
        let mut req = self.request(Method::POST, url);
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = self.send(req).await?;
        self.decode(resp).await
    }

    pub async fn patch<T: DeserializeOwned, B: Serialize>(
        &self,
        url: Url,
        body: &B,
    ) -> anyhow::Result<Body<T>> {
        let resp = self
            .send(self.request(Method::PATCH, url).json(body))
            .await?;
        self.decode(resp).await
    }

    async fn decode<T: DeserializeOwned>(&self, resp: Response) -> anyhow::Result<Body<T>> {
        let url = resp.url().clone();
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| self.unreachable(&e))
            .with_context(|| format!("reading the answer to {}", url.path()))?;
        let json: Value = serde_json::from_slice(&bytes)
            .with_context(|| format!("the answer to {} is not JSON", url.path()))?;
        let value = serde_json::from_value(json.clone())
            .with_context(|| format!("unexpected answer to {}", url.path()))?;
        Ok(Body { value, json })
    }

    /// An execution with its actions and approvals.
    pub async fn execution(
        &self,
        project: &str,
        number: u64,
    ) -> anyhow::Result<Body<ExecutionDetail>> {
        self.get(self.execution_url(project, number, &[])).await
    }

    /// A reference's project and number: a bare project means its latest execution.
    pub async fn resolve(&self, r: &ExecutionRef) -> anyhow::Result<(String, u64)> {
        if let Some(n) = r.number {
            return Ok((r.project.clone(), n));
        }
        let mut url = self.url(&["projects", &r.project, "executions"]);
        url.query_pairs_mut().append_pair("limit", "1");
        let page: Body<Page<Execution>> = self.get(url).await?;
        match page.value.items.first() {
            Some(e) => Ok((r.project.clone(), e.number)),
            None => Err(UsageError(format!(
                "project `{}` has no executions yet (start one with `slipway pipeline start {}`)",
                r.project, r.project
            ))
            .into()),
        }
    }
}

/// A non-2xx answer as an error: 4xx is the request's fault (exit 2), the rest the server's.
fn api_error(status: StatusCode, text: &str) -> anyhow::Error {
    let message = match serde_json::from_str::<ApiError>(text) {
        Ok(e) => {
            let mut m = e.message;
            for d in &e.details {
                m.push_str("\n  ");
                m.push_str(d);
            }
            m
        }
        Err(_) => {
            let t: String = text.trim().chars().take(300).collect();
            if t.is_empty() {
                format!("HTTP {status}")
            } else {
                format!("HTTP {status}: {t}")
            }
        }
    };
    if status.is_client_error() {
        UsageError(message).into()
    } else {
        ServerFailed(format!("the server failed: {message}")).into()
    }
}

/// The innermost cause, which is the one that says what happened ("Connection refused").
fn root_cause(e: &reqwest::Error) -> String {
    let mut cause: &dyn std::error::Error = e;
    while let Some(s) = cause.source() {
        cause = s;
    }
    cause.to_string()
}

/// Prints a JSON answer for `--json`.
pub fn print_json(v: &Value) {
    match serde_json::to_string_pretty(v) {
        Ok(s) => println!("{s}"),
        Err(_) => println!("{v}"),
    }
}

/// `project#number`, or `project` for its latest execution.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExecutionRef {
    pub project: String,
    pub number: Option<u64>,
}

impl FromStr for ExecutionRef {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || {
            format!(
                "`{s}`: expected PROJECT#NUMBER (e.g. hello#42), or PROJECT for its latest execution"
            )
        };
        let (project, number) = match s.split_once('#') {
            Some((p, n)) => {
                let digits = !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit());
                let n = n
                    .parse::<u64>()
                    .ok()
                    .filter(|n| digits && *n > 0)
                    .ok_or_else(bad)?;
                (p, Some(n))
            }
            None => (s, None),
        };
        let name_ok = !project.is_empty()
            && project
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
        if !name_ok {
            return Err(bad());
        }
        Ok(ExecutionRef {
            project: project.to_string(),
            number,
        })
    }
}

impl fmt::Display for ExecutionRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.number {
            Some(n) => write!(f, "{}#{n}", self.project),
            None => f.write_str(&self.project),
        }
    }
}

/// Rows under a header, each column as wide as its widest cell; the last is not padded.
pub fn table(out: &mut dyn std::io::Write, header: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |out: &mut dyn std::io::Write, cells: &mut dyn Iterator<Item = &str>| {
        let mut s = String::new();
        for (i, (c, w)) in cells.zip(&widths).enumerate() {
            if i > 0 {
                s.push_str("  ");
            }
            s.push_str(c);
            if i + 1 < widths.len() {
                s.extend(std::iter::repeat_n(' ', w - c.chars().count()));
            }
        }
        let _ = writeln!(out, "{}", s.trim_end());
    };
    line(out, &mut header.iter().copied());
    for r in rows {
        line(out, &mut r.iter().map(String::as_str));
    }
}

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// A duration as `slipway run` prints it: `850ms`, `12.3s`, `4m05s`, `3h12m`, `6d23h`.
pub fn secs(ms: u64) -> String {
    if ms < 1000 {
        format!("{ms}ms")
    } else if ms < 60_000 {
        format!("{:.1}s", ms as f64 / 1000.0)
    } else if ms < 3_600_000 {
        format!("{}m{:02}s", ms / 60_000, (ms / 1000) % 60)
    } else if ms < 86_400_000 {
        format!("{}h{:02}m", ms / 3_600_000, (ms / 60_000) % 60)
    } else {
        format!("{}d{:02}h", ms / 86_400_000, (ms / 3_600_000) % 24)
    }
}

/// How long something took, or has taken so far (`12.3s+` while it runs).
pub fn took(started: Option<i64>, finished: Option<i64>, now: i64) -> String {
    match (started, finished) {
        (Some(s), Some(f)) => secs(f.saturating_sub(s).max(0) as u64),
        (Some(s), None) => format!("{}+", secs(now.saturating_sub(s).max(0) as u64)),
        _ => "-".into(),
    }
}

/// A moment for people: relative within a day (`5m ago`), else the UTC date and time.
pub fn when(ms: i64, now: i64) -> String {
    let age = now - ms;
    if (0..86_400_000).contains(&age) {
        let s = age / 1000;
        if s < 60 {
            format!("{s}s ago")
        } else if s < 3600 {
            format!("{}m ago", s / 60)
        } else {
            format!("{}h{:02}m ago", s / 3600, (s / 60) % 60)
        }
    } else {
        utc(ms)
    }
}

/// `2024-05-01 12:34 UTC`.
pub fn utc(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02} UTC",
        rem / 3600,
        (rem / 60) % 60
    )
}

/// A commit id cut to 10 characters for tables.
pub fn short(rev: Option<&str>) -> String {
    match rev {
        Some(r) => r.chars().take(10).collect(),
        None => "-".into(),
    }
}

/// Who decides an approval from this terminal.
pub fn user() -> String {
    std::env::var("USER")
        .ok()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| "cli".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(input: &str, expect: Result<(&str, Option<u64>), ()>) {
        let got = input.parse::<ExecutionRef>();
        match expect {
            Ok((p, n)) => {
                let r = got.unwrap_or_else(|e| panic!("{input}: {e}"));
                assert_eq!((r.project.as_str(), r.number), (p, n), "{input}");
            }
            Err(()) => assert!(got.is_err(), "{input} parsed as {got:?}"),
        }
    }

    #[test]
    fn execution_references() {
        check("hello#42", Ok(("hello", Some(42))));
        check("hello", Ok(("hello", None)));
        check("my-app.v2#1", Ok(("my-app.v2", Some(1))));
        check("hello#", Err(()));
        check("#3", Err(()));
        check("hello#0", Err(()));
        check("hello#x", Err(()));
        check("hello#+3", Err(()));
        check("hello#1#2", Err(()));
        check("a/b#1", Err(()));
        check("", Err(()));
    }

    #[test]
    fn utc_dates() {
        assert_eq!(utc(0), "1970-01-01 00:00 UTC");
        assert_eq!(utc(1_709_210_096_000), "2024-02-29 12:34 UTC");
    }

    #[test]
    fn tables_align_all_but_the_last_column() {
        let mut out = Vec::new();
        table(
            &mut out,
            &["A", "BB", "C"],
            &[vec!["xxx".into(), "y".into(), "z".into()]],
        );
        assert_eq!(String::from_utf8(out).unwrap(), "A    BB  C\nxxx  y   z\n");
    }

    #[test]
    fn api_errors_map_to_exit_codes() {
        let e = api_error(
            StatusCode::UNPROCESSABLE_ENTITY,
            r#"{"code":"invalid_pipeline","message":"invalid pipeline","details":["a.yml:1:1: bad"]}"#,
        );
        let u = e
            .downcast_ref::<UsageError>()
            .expect("4xx is a usage error");
        assert_eq!(u.0, "invalid pipeline\n  a.yml:1:1: bad");
        let e = api_error(StatusCode::INTERNAL_SERVER_ERROR, "boom");
        assert!(e.downcast_ref::<ServerFailed>().is_some());
    }
}
