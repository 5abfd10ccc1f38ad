//! The options a JavaScript application passes to `new Client({...})`, as the JSON the ES module
//! wrapper hands over, and their translation into a [`lifeline_core::Config`].
//!
//! Pure data and validation, compiled on every target so that it is tested natively. No browser
//! API is touched here: the seed and the remembered transport are supplied by the caller.

use lifeline_core::{text, BackoffPolicy, BadEndpoint, Config, Strategy, TransportKind};
use std::time::Duration;

/// The numeric options, in the order the wrapper passes them (`NaN` for "absent"). The wrapper's
/// list (`NUMERIC` in js/lifeline.js) must be the same; a test checks it. Numbers travel as one
/// `Float64Array` rather than as JSON, so that no JSON parser for options is linked in the `.wasm`.
pub const NUMERIC: [&str; 18] = [
    "seed",
    "connectTimeoutMs",
    "firstFrameTimeoutMs",
    "raceAfterMs",
    "pingIntervalMs",
    "livenessTimeoutMs",
    "pollWaitMs",
    "sendTimeoutMs",
    "stableAfterMs",
    "stepDownAfter",
    "maxAttempts",
    "backoff.baseMs",
    "backoff.capMs",
    "backoff.floorMs",
    "probeBackoff.baseMs",
    "probeBackoff.capMs",
    "probeBackoff.floorMs",
    "firstVisitRaceAfterMs",
];

/// After the numeric options, one more number: `1` for `strategy: "hybrid"` (the wrapper checks
/// the word, so that no strategy names are linked in the `.wasm`).
pub const HYBRID: usize = NUMERIC.len();

/// Why [`Options::to_config`] refused the options. A value rather than a text: the `.wasm`, whose
/// wrapper checks the options before they cross, then never links the words (see
/// [`Refusal::describe`]).
#[derive(Debug, Clone, PartialEq)]
pub enum Refusal {
    /// `url` is not a server URL.
    Url(BadEndpoint),
    /// Neither `token` nor `getToken` was given.
    NoToken,
    /// `transports` names a transport the core does not know.
    UnknownTransport(String),
    /// `strategy: "hybrid"` in a build without the `hybrid` feature.
    NoHybrid,
}

impl Refusal {
    /// What was wrong, in words (the message of the `bad_options` error).
    pub fn describe(&self) -> String {
        match self {
            Refusal::Url(e) => e.describe(),
            Refusal::NoToken => "give `token` or `getToken`".into(),
            Refusal::UnknownTransport(name) => text!("unknown transport `", name, "`"),
            Refusal::NoHybrid => "no hybrid strategy in this build".into(),
        }
    }
}

/// `new Client(options)`, minus the functions (`getToken`), which the wrapper passes separately.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// The server's base URL, `http(s)://host[:port][/prefix]`.
    pub url: String,
    /// A token to start with.
    pub token: Option<String>,
    /// Whether the application gave a `getToken` function.
    pub token_provider: bool,
    /// Allowed rungs, best first, comma-separated (`websocket,sse,long-poll`); empty for all.
    pub transports: String,
    /// The values of [`NUMERIC`], in order; `NaN` or missing entries are absent.
    pub numbers: Vec<f64>,
}

impl Options {
    /// The number at `index` of [`NUMERIC`], if present, finite and not negative.
    fn number(&self, index: usize) -> Option<f64> {
        self.numbers
            .get(index)
            .copied()
            .filter(|v| v.is_finite() && *v >= 0.0)
    }

    fn millis(&self, index: usize) -> Option<Duration> {
        self.number(index).map(|v| Duration::from_millis(v as u64))
    }

    /// The core configuration. `seed` is used when the options carry none; `remembered` is the
    /// rung stored for this endpoint, if any.
    pub fn to_config(&self, seed: u64, remembered: Option<&str>) -> Result<Config, Refusal> {
        let mut config = Config::new(&self.url).map_err(Refusal::Url)?;
        config.token = self.token.clone().filter(|t| !t.is_empty());
        config.token_provider = self.token_provider;
        if config.token.is_none() && !config.token_provider {
            return Err(Refusal::NoToken);
        }
        // Empty names (an empty list, a stray comma) are skipped; no name at all means every rung.
        let mut kinds = Vec::new();
        for name in self.transports.split(',').filter(|t| !t.is_empty()) {
            kinds.push(
                TransportKind::parse(name).ok_or_else(|| Refusal::UnknownTransport(name.into()))?,
            );
        }
        if !kinds.is_empty() {
            config.transports = kinds;
        }
        config.initial_transport = remembered
            .and_then(TransportKind::parse)
            .filter(|k| config.ladder().contains(k));
        // The indices are those of NUMERIC (a test checks every name against its field).
        config.seed = self.number(0).map(|s| s as u64).unwrap_or(seed);
        for (index, field) in [
            &mut config.connect_timeout,
            &mut config.first_frame_timeout,
            &mut config.race_after,
            &mut config.ping_interval,
            &mut config.liveness_timeout,
            &mut config.poll_wait,
            &mut config.send_timeout,
            &mut config.stable_after,
        ]
        .into_iter()
        .enumerate()
        {
            if let Some(v) = self.millis(1 + index) {
                *field = v;
            }
        }
        if let Some(n) = self.number(9) {
            config.step_down_after = (n as u32).max(1);
        }
        config.max_attempts = self.number(10).map(|n| n as u32);
        self.backoff(11, &mut config.backoff);
        self.backoff(14, &mut config.probe_backoff);
        if let Some(v) = self.millis(17) {
            config.first_visit_race_after = v;
        }
        if self.number(HYBRID) == Some(1.0) {
            if !cfg!(feature = "hybrid") {
                return Err(Refusal::NoHybrid);
            }
            config.strategy = Strategy::Hybrid;
        }
        Ok(config)
    }

    /// A backoff policy from the three numbers at `first` (`baseMs`, `capMs`, `floorMs`).
    fn backoff(&self, first: usize, policy: &mut BackoffPolicy) {
        for (offset, field) in [&mut policy.base, &mut policy.cap, &mut policy.floor]
            .into_iter()
            .enumerate()
        {
            if let Some(v) = self.millis(first + offset) {
                *field = v;
            }
        }
    }
}

/// The `localStorage` key under which the last working rung of an endpoint is remembered.
pub fn storage_key(config: &Config) -> String {
    text!("lifeline:transport:", config.endpoint.key())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::view;

    fn options(numbers: &[(&str, f64)]) -> Options {
        let mut o = Options {
            url: "http://127.0.0.1:8787".into(),
            token: Some("t".into()),
            numbers: vec![f64::NAN; NUMERIC.len()],
            ..Options::default()
        };
        for (name, v) in numbers {
            let i = NUMERIC.iter().position(|n| n == name).unwrap();
            o.numbers[i] = *v;
        }
        o
    }

    #[test]
    fn minimal_options_give_the_core_defaults() {
        let c = options(&[]).to_config(7, None).unwrap();
        assert_eq!(c.token.as_deref(), Some("t"));
        assert!(!c.token_provider);
        assert_eq!(c.seed, 7);
        assert_eq!(c.ladder(), TransportKind::ALL.to_vec());
        assert_eq!(c.initial_transport, None);
        assert_eq!(c.max_attempts, None);
    }

    #[test]
    fn the_number_after_numeric_chooses_the_hybrid_strategy() {
        let mut o = options(&[]);
        assert_eq!(o.to_config(0, None).unwrap().strategy, Strategy::Single);
        o.numbers.push(1.0);
        if !cfg!(feature = "hybrid") {
            assert_eq!(o.to_config(0, None).unwrap_err(), Refusal::NoHybrid);
            return;
        }
        let c = o.to_config(0, None).unwrap();
        assert_eq!(c.strategy, Strategy::Hybrid);
        assert_eq!(c.ladder(), [TransportKind::Sse, TransportKind::LongPoll]);
    }

    #[test]
    fn a_token_or_a_provider_is_required() {
        let mut o = options(&[]);
        o.token = None;
        assert!(o.to_config(0, None).is_err());
        o.token_provider = true;
        assert!(o.to_config(0, None).unwrap().token.is_none());
    }

    #[test]
    fn transports_timeouts_and_backoff_are_applied() {
        let mut o = options(&[
            ("pingIntervalMs", 2000.0),
            ("backoff.baseMs", 50.0),
            ("backoff.capMs", 400.0),
            ("probeBackoff.floorMs", 10.0),
            ("seed", 42.0),
            ("maxAttempts", 3.0),
        ]);
        o.url = "https://chat.example/api".into();
        o.transports = "sse,long-poll".into();
        let c = o.to_config(0, Some("long-poll")).unwrap();
        assert_eq!(
            c.ladder(),
            vec![TransportKind::Sse, TransportKind::LongPoll]
        );
        assert_eq!(c.initial_transport, Some(TransportKind::LongPoll));
        assert_eq!(c.ping_interval, Duration::from_secs(2));
        assert_eq!(c.backoff.base, Duration::from_millis(50));
        assert_eq!(c.backoff.cap, Duration::from_millis(400));
        assert_eq!(c.probe_backoff.floor, Duration::from_millis(10));
        assert_eq!(c.seed, 42);
        assert_eq!(c.max_attempts, Some(3));
        assert_eq!(
            storage_key(&c),
            "lifeline:transport:https://chat.example/api"
        );
    }

    #[test]
    fn every_numeric_option_lands_in_its_own_field() {
        // Each name gets its own value (its position + 2, in ms), so a swapped index shows.
        let values: Vec<(&str, f64)> = NUMERIC
            .iter()
            .enumerate()
            .map(|(i, name)| (*name, i as f64 + 2.0))
            .collect();
        let c = options(&values).to_config(0, None).unwrap();
        let ms = |n: u64| Duration::from_millis(n);
        assert_eq!(c.seed, 2);
        assert_eq!(c.connect_timeout, ms(3));
        assert_eq!(c.first_frame_timeout, ms(4));
        assert_eq!(c.race_after, ms(5));
        assert_eq!(c.ping_interval, ms(6));
        assert_eq!(c.liveness_timeout, ms(7));
        assert_eq!(c.poll_wait, ms(8));
        assert_eq!(c.send_timeout, ms(9));
        assert_eq!(c.stable_after, ms(10));
        assert_eq!(c.step_down_after, 11);
        assert_eq!(c.max_attempts, Some(12));
        assert_eq!(
            (c.backoff.base, c.backoff.cap, c.backoff.floor),
            (ms(13), ms(14), ms(15))
        );
        assert_eq!(
            (
                c.probe_backoff.base,
                c.probe_backoff.cap,
                c.probe_backoff.floor
            ),
            (ms(16), ms(17), ms(18))
        );
        assert_eq!(c.first_visit_race_after, ms(19));
    }

    #[test]
    fn empty_transport_names_are_skipped() {
        let mut o = options(&[]);
        o.transports = ",sse,".into();
        assert_eq!(
            o.to_config(0, None).unwrap().ladder(),
            vec![TransportKind::Sse]
        );
        o.transports = ",".into();
        assert_eq!(
            o.to_config(0, None).unwrap().ladder(),
            TransportKind::ALL.to_vec()
        );
    }

    #[test]
    fn a_remembered_rung_outside_the_allowed_list_is_ignored() {
        let mut o = options(&[]);
        o.transports = "websocket".into();
        assert_eq!(o.to_config(0, Some("sse")).unwrap().initial_transport, None);
        assert_eq!(
            o.to_config(0, Some("bogus")).unwrap().initial_transport,
            None
        );
    }

    #[test]
    fn bad_input_is_an_error_not_a_panic() {
        let mut o = options(&[("connectTimeoutMs", -5.0), ("raceAfterMs", f64::INFINITY)]);
        let c = o.to_config(0, None).unwrap();
        assert_eq!(c.connect_timeout, Duration::from_secs(10));
        o.numbers.truncate(2);
        assert!(o.to_config(0, None).is_ok());
        o.url = "ftp://h".into();
        assert!(o.to_config(0, None).is_err());
        assert!(o
            .to_config(0, None)
            .unwrap_err()
            .describe()
            .contains("ftp://h"));
        let mut o = options(&[]);
        o.token = None;
        assert_eq!(o.to_config(0, None).unwrap_err(), Refusal::NoToken);
        assert_eq!(Refusal::NoToken.describe(), "give `token` or `getToken`");
        let mut o = options(&[]);
        o.transports = "carrier-pigeon".into();
        let refusal = o.to_config(0, None).unwrap_err();
        assert_eq!(refusal, Refusal::UnknownTransport("carrier-pigeon".into()));
        assert_eq!(refusal.describe(), "unknown transport `carrier-pigeon`");
    }

    #[test]
    fn the_wrapper_passes_the_numbers_in_the_same_order() {
        let js = include_str!("../js/lifeline.js");
        let start = js
            .find("const NUMERIC = [")
            .expect("NUMERIC in lifeline.js");
        let list = &js[start..start + js[start..].find("];").unwrap()];
        let names: Vec<&str> = list.split('\'').skip(1).step_by(2).collect();
        assert_eq!(names, NUMERIC);
    }
    /// Runs `script` (an ES module importing `./lifeline.js`) in Node beside the real wrapper and
    /// driver, with the wasm-bindgen glue replaced by `glue`; answers its stdout.
    fn run_wrapper(name: &str, glue: &str, script: &str) -> String {
        let js = concat!(env!("CARGO_MANIFEST_DIR"), "/js");
        let dir = std::env::temp_dir().join(format!("lifeline-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for file in ["lifeline.js", "driver.js"] {
            std::fs::copy(format!("{js}/{file}"), dir.join(file)).unwrap();
        }
        std::fs::write(dir.join("lifeline_wasm.js"), glue).unwrap();
        std::fs::write(dir.join("check.mjs"), script).unwrap();
        let out = std::process::Command::new("node")
            .arg("check.mjs")
            .current_dir(&dir)
            .output()
            .expect("node is needed for this test: apt-get install nodejs");
        let _ = std::fs::remove_dir_all(&dir);
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "{stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    }

    /// The checks the wrapper does before `Core.open` (so that the `.wasm` never explains a
    /// refusal): a URL that `storageKey` answers with an error JSON, and an unknown transport name,
    /// reject `client.ready` with `bad_options` and the words the core would have used; good
    /// options reach `Core.open` with empty texts for an absent token and remembered rung.
    #[test]
    fn the_wrapper_checks_the_url_and_the_transports_before_opening() {
        let url_error = view::plain_error(
            "bad_options",
            &Config::new("ftp://h").unwrap_err().describe(),
        );
        let glue = format!(
            "export default function init() {{ return Promise.resolve(); }}\n\
             export const opened = [];\n\
             export class Core {{ static open(...args) {{ opened.push(args); return undefined; }} }}\n\
             export function storageKey(url) {{ return url.startsWith('ftp:') ? {url_error:?} : 'k:' + url; }}\n"
        );
        let stdout = run_wrapper(
            "checks",
            &glue,
            r#"import { Client } from './lifeline.js';
import { opened } from './lifeline_wasm.js';
globalThis.localStorage = { getItem: () => null };
const verdict = async (options) => {
  try { await new Client({ autoConnect: false, ...options }).ready; return 'ok'; }
  catch (e) { return `${e.code}: ${e.message}`; }
};
const verdicts = [
  await verdict({ url: 'ftp://h', token: 't' }),
  await verdict({ url: 'http://h', token: 't', transports: ['sse', 'carrier-pigeon'] }),
  await verdict({ url: 'http://h', getToken: () => 't', transports: ['ws', '', 'long-poll'] }),
];
console.log(JSON.stringify({ verdicts, opened: opened.map((a) => [a[1], a[2], a[5]]) }));
process.exit(0);
"#,
        );
        let v: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
        let bad_url = Refusal::Url(Config::new("ftp://h").unwrap_err()).describe();
        assert_eq!(v["verdicts"][0], format!("bad_options: {bad_url}"));
        assert_eq!(
            v["verdicts"][1],
            format!(
                "bad_options: {}",
                Refusal::UnknownTransport("carrier-pigeon".into()).describe()
            )
        );
        // The stub's `open` refuses (answers `undefined`): the wrapper says so rather than crash.
        assert_eq!(
            v["verdicts"][2],
            "bad_options: new Client(...): options refused"
        );
        // Only the third got as far as `open`: no token, the names as given, nothing remembered.
        assert_eq!(v["opened"], serde_json::json!([["", "ws,,long-poll", ""]]));
    }

    /// The wrapper refuses an unknown transport name itself (so that the `.wasm` never has to
    /// explain one): its list must accept exactly the names the core parses, aliases included.
    #[test]
    fn the_wrapper_accepts_the_transport_names_the_core_parses() {
        let js = include_str!("../js/lifeline.js");
        let start = js.find("const RUNGS = [").expect("RUNGS in lifeline.js");
        let list = &js[start..start + js[start..].find("];").unwrap()];
        let rungs: Vec<&str> = list.split('\'').skip(1).step_by(2).collect();
        for name in &rungs {
            assert!(TransportKind::parse(name).is_some(), "{name}");
        }
        for name in [
            "websocket",
            "ws",
            "sse",
            "long-poll",
            "longpoll",
            "poll",
            "WebSocket",
            "SSE",
            "http",
            "long_poll",
            "",
            "carrier-pigeon",
        ] {
            assert_eq!(
                rungs.contains(&name),
                TransportKind::parse(name).is_some(),
                "{name}"
            );
        }
    }

    /// `new Client({...})` in lifeline.js refuses a misspelt option (top level or nested) with
    /// `bad_options`, and accepts every documented one. Runs the real module in Node, with the
    /// wasm-bindgen glue stubbed (the check happens before anything is loaded).
    #[test]
    fn the_js_client_refuses_unknown_option_names() {
        let stdout = run_wrapper(
            "options",
            "export default function init() { return new Promise(() => {}); }\n\
             export class Core {}\nexport function storageKey() { return ''; }\n",
            r#"import { Client } from './lifeline.js';
const base = { url: 'http://127.0.0.1:1', token: 't', autoConnect: false };
const verdict = (extra) => {
  try { new Client({ ...base, ...extra }); return 'ok'; } catch (e) { return `${e.code}: ${e.message}`; }
};
console.log(JSON.stringify([
  verdict({}),
  verdict({ pingIntervalMs: 5, backoff: { baseMs: 1, capMs: 2, floorMs: 0 }, probeBackoff: {} }),
  verdict({ pingIntervallMs: 5 }),
  verdict({ backoff: { baseMS: 1 } }),
  verdict({ tokn: 'x' }),
]));
process.exit(0);
"#,
        );
        let verdicts: Vec<String> = serde_json::from_str(stdout.trim()).unwrap();
        assert_eq!(verdicts[0], "ok");
        assert_eq!(verdicts[1], "ok");
        for (verdict, name) in
            verdicts[2..]
                .iter()
                .zip(["pingIntervallMs", "backoff.baseMS", "tokn"])
        {
            assert!(verdict.starts_with("bad_options: "), "{verdict}");
            assert!(verdict.contains(name), "{verdict}");
        }
    }
}
