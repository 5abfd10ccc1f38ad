//! The delivery checker: given what each sender sent (in order) and what one subscriber received,
//! it reports lost, duplicated and reordered messages separately, so that a failing test says
//! which guarantee broke.
//!
//! Bodies have the form `<sender>#<index>`; [`body`] makes them. Pure functions, no I/O.

use lifeline::Message;
use std::collections::{BTreeMap, HashMap};
use std::fmt;

/// The body of message `index` from `sender`.
pub fn body(sender: &str, index: usize) -> String {
    format!("{sender}#{index}")
}

fn parse(body: &str) -> Option<(&str, usize)> {
    let (sender, index) = body.rsplit_once('#')?;
    Some((sender, index.parse().ok()?))
}

/// What went wrong at one subscriber.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Report {
    /// Sent but never received.
    pub lost: Vec<String>,
    /// Received more than once (with the number of copies).
    pub duplicated: Vec<(String, usize)>,
    /// Received after a later message of the same sender, or with a sequence number not above
    /// the previous message's.
    pub reordered: Vec<String>,
    /// Received but never sent (a stray body).
    pub unexpected: Vec<String>,
}

impl Report {
    pub fn is_clean(&self) -> bool {
        self.lost.is_empty()
            && self.duplicated.is_empty()
            && self.reordered.is_empty()
            && self.unexpected.is_empty()
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fn few<T: fmt::Debug>(v: &[T]) -> String {
            let shown: Vec<_> = v.iter().take(8).collect();
            format!(
                "{} {:?}{}",
                v.len(),
                shown,
                if v.len() > 8 { " …" } else { "" }
            )
        }
        write!(
            f,
            "lost {}; duplicated {}; reordered {}; unexpected {}",
            few(&self.lost),
            few(&self.duplicated),
            few(&self.reordered),
            few(&self.unexpected)
        )
    }
}

/// Checks one subscriber's `received` messages against `sent` (sender name → number of messages
/// it sent, bodies made by [`body`]).
pub fn check(sent: &BTreeMap<String, usize>, received: &[Message]) -> Report {
    let mut report = Report::default();
    let mut copies: HashMap<&str, usize> = HashMap::new();
    let mut last_index: HashMap<&str, usize> = HashMap::new();
    let mut last_seq = None;
    for m in received {
        if last_seq.is_some_and(|s| m.seq <= s) {
            report.reordered.push(format!("{} (seq {})", m.body, m.seq));
        }
        last_seq = Some(m.seq);
        let count = copies.entry(m.body.as_str()).or_default();
        *count += 1;
        if *count > 1 {
            continue;
        }
        match parse(&m.body) {
            Some((sender, index)) if sent.get(sender).is_some_and(|&n| index < n) => {
                if last_index.get(sender).is_some_and(|&prev| index < prev) {
                    report.reordered.push(m.body.clone());
                }
                last_index.insert(sender, index);
            }
            _ => report.unexpected.push(m.body.clone()),
        }
    }
    for (sender, &n) in sent {
        for i in 0..n {
            let b = body(sender, i);
            match copies.get(b.as_str()) {
                None => report.lost.push(b),
                Some(&c) if c > 1 => report.duplicated.push((b, c)),
                Some(_) => {}
            }
        }
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(seq: u64, body: &str) -> Message {
        Message {
            seq,
            conv: "c".into(),
            from: "u".into(),
            id: format!("id{seq}"),
            body: body.into(),
            ts: 0,
        }
    }

    #[test]
    fn tells_the_three_failures_apart() {
        let sent = BTreeMap::from([("a".to_string(), 3), ("b".to_string(), 2)]);
        let clean = [
            msg(1, "a#0"),
            msg(2, "b#0"),
            msg(3, "a#1"),
            msg(4, "a#2"),
            msg(5, "b#1"),
        ];
        assert!(check(&sent, &clean).is_clean());

        let bad = [
            msg(1, "a#0"),
            msg(2, "a#2"),
            msg(3, "a#1"),
            msg(4, "a#1"),
            msg(5, "b#0"),
        ];
        let r = check(&sent, &bad);
        assert_eq!(r.lost, vec!["b#1".to_string()]);
        assert_eq!(r.duplicated, vec![("a#1".to_string(), 2)]);
        assert_eq!(r.reordered, vec!["a#1".to_string()]);
        assert!(r.unexpected.is_empty());

        let seq_back = [msg(2, "a#0"), msg(1, "a#1")];
        let sent = BTreeMap::from([("a".to_string(), 2)]);
        assert_eq!(check(&sent, &seq_back).reordered.len(), 1);
    }
}
