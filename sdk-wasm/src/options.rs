//! The options a JavaScript application passes to `new Client({...})`, as the JSON the ES module
//! wrapper hands over, and their translation into a [`lifeline_core::Config`].
//!
//! Pure data and validation, compiled on every target so that it is tested natively. No browser
//! API is touched here: the seed and the remembered transport are supplied by the caller.

use lifeline_core::{BackoffPolicy, Config, TransportKind};
use serde::Deserialize;
use std::time::Duration;

/// A backoff policy as JavaScript spells it. Absent members keep the core's default.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct BackoffOptions {
    pub base_ms: Option<u64>,
    pub cap_ms: Option<u64>,
    pub floor_ms: Option<u64>,
}

/// `new Client(options)`, minus the functions (`getToken`), which the wrapper passes separately.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Options {
    /// The server's base URL, `http(s)://host[:port][/prefix]`.
    pub url: String,
    /// A token to start with.
    pub token: Option<String>,
    /// Whether the application gave a `getToken` function.
    pub token_provider: bool,
    /// Allowed rungs, best first: `websocket`, `sse`, `long-poll`. Default: all.
    pub transports: Option<Vec<String>>,
    /// Whether to remember the rung that last worked in `localStorage`. Default: true.
    pub remember_transport: Option<bool>,
    /// The seed of the session's random numbers; drawn at random when absent.
    pub seed: Option<f64>,
    pub connect_timeout_ms: Option<u64>,
    pub first_frame_timeout_ms: Option<u64>,
    pub race_after_ms: Option<u64>,
    pub ping_interval_ms: Option<u64>,
    pub liveness_timeout_ms: Option<u64>,
    pub poll_wait_ms: Option<u64>,
    pub send_timeout_ms: Option<u64>,
    pub stable_after_ms: Option<u64>,
    pub step_down_after: Option<u32>,
    pub max_attempts: Option<u32>,
    pub backoff: Option<BackoffOptions>,
    pub probe_backoff: Option<BackoffOptions>,
}

impl Options {
    /// Parses the wrapper's JSON.
    pub fn parse(json: &str) -> Result<Options, String> {
        serde_json::from_str(json).map_err(|e| format!("invalid options: {e}"))
    }

    /// Whether the last working rung is to be remembered.
    pub fn remember(&self) -> bool {
        self.remember_transport.unwrap_or(true)
    }

    /// The core configuration. `seed` is used when the options carry none; `remembered` is the
    /// rung stored for this endpoint, if any.
    pub fn to_config(&self, seed: u64, remembered: Option<&str>) -> Result<Config, String> {
        let mut config = Config::new(&self.url).map_err(|e| e.to_string())?;
        config.token = self.token.clone().filter(|t| !t.is_empty());
        config.token_provider = self.token_provider;
        if config.token.is_none() && !config.token_provider {
            return Err("give `token` or `getToken`".into());
        }
        if let Some(names) = &self.transports {
            let mut kinds = Vec::new();
            for name in names {
                kinds.push(
                    TransportKind::parse(name)
                        .ok_or_else(|| format!("unknown transport `{name}`"))?,
                );
            }
            config.transports = kinds;
        }
        config.initial_transport = remembered
            .and_then(TransportKind::parse)
            .filter(|k| config.ladder().contains(k));
        config.seed = self.seed.map(|s| s as u64).unwrap_or(seed);
        let ms = Duration::from_millis;
        let set = |field: &mut Duration, value: Option<u64>| {
            if let Some(v) = value {
                *field = ms(v);
            }
        };
        set(&mut config.connect_timeout, self.connect_timeout_ms);
        set(&mut config.first_frame_timeout, self.first_frame_timeout_ms);
        set(&mut config.race_after, self.race_after_ms);
        set(&mut config.ping_interval, self.ping_interval_ms);
        set(&mut config.liveness_timeout, self.liveness_timeout_ms);
        set(&mut config.poll_wait, self.poll_wait_ms);
        set(&mut config.send_timeout, self.send_timeout_ms);
        set(&mut config.stable_after, self.stable_after_ms);
        if let Some(n) = self.step_down_after {
            config.step_down_after = n.max(1);
        }
        config.max_attempts = self.max_attempts;
        if let Some(b) = &self.backoff {
            config.backoff = b.apply(config.backoff);
        }
        if let Some(b) = &self.probe_backoff {
            config.probe_backoff = b.apply(config.probe_backoff);
        }
        Ok(config)
    }
}

impl BackoffOptions {
    fn apply(&self, mut policy: BackoffPolicy) -> BackoffPolicy {
        if let Some(v) = self.base_ms {
            policy.base = Duration::from_millis(v);
        }
        if let Some(v) = self.cap_ms {
            policy.cap = Duration::from_millis(v);
        }
        if let Some(v) = self.floor_ms {
            policy.floor = Duration::from_millis(v);
        }
        policy
    }
}

/// The `localStorage` key under which the last working rung of an endpoint is remembered.
pub fn storage_key(config: &Config) -> String {
    format!("lifeline:transport:{}", config.endpoint.key())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minimal_options_give_the_core_defaults() {
        let o = Options::parse(r#"{"url":"http://127.0.0.1:8787","token":"t"}"#).unwrap();
        let c = o.to_config(7, None).unwrap();
        assert_eq!(c.token.as_deref(), Some("t"));
        assert!(!c.token_provider);
        assert_eq!(c.seed, 7);
        assert_eq!(c.ladder(), TransportKind::ALL.to_vec());
        assert_eq!(c.initial_transport, None);
        assert!(o.remember());
    }

    #[test]
    fn a_token_or_a_provider_is_required() {
        let o = Options::parse(r#"{"url":"http://h"}"#).unwrap();
        assert!(o.to_config(0, None).is_err());
        let o = Options::parse(r#"{"url":"http://h","tokenProvider":true}"#).unwrap();
        assert!(o.to_config(0, None).unwrap().token.is_none());
    }

    #[test]
    fn transports_timeouts_and_backoff_are_applied() {
        let o = Options::parse(
            r#"{"url":"https://chat.example/api","token":"t","transports":["sse","long-poll"],
                "pingIntervalMs":2000,"backoff":{"baseMs":50,"capMs":400},"seed":42,
                "rememberTransport":false}"#,
        )
        .unwrap();
        let c = o.to_config(0, Some("long-poll")).unwrap();
        assert_eq!(
            c.ladder(),
            vec![TransportKind::Sse, TransportKind::LongPoll]
        );
        assert_eq!(c.initial_transport, Some(TransportKind::LongPoll));
        assert_eq!(c.ping_interval, Duration::from_secs(2));
        assert_eq!(c.backoff.base, Duration::from_millis(50));
        assert_eq!(c.backoff.cap, Duration::from_millis(400));
        assert_eq!(c.seed, 42);
        assert!(!o.remember());
        assert_eq!(
            storage_key(&c),
            "lifeline:transport:https://chat.example/api"
        );
    }

    #[test]
    fn a_remembered_rung_outside_the_allowed_list_is_ignored() {
        let o =
            Options::parse(r#"{"url":"http://h","token":"t","transports":["websocket"]}"#).unwrap();
        assert_eq!(o.to_config(0, Some("sse")).unwrap().initial_transport, None);
        assert_eq!(
            o.to_config(0, Some("bogus")).unwrap().initial_transport,
            None
        );
    }

    #[test]
    fn bad_input_is_an_error_not_a_panic() {
        assert!(Options::parse("not json").is_err());
        let o = Options::parse(r#"{"url":"ftp://h","token":"t"}"#).unwrap();
        assert!(o.to_config(0, None).is_err());
        let o = Options::parse(r#"{"url":"http://h","token":"t","transports":["carrier-pigeon"]}"#)
            .unwrap();
        assert!(o.to_config(0, None).is_err());
    }
}
