//! History by time around a moment (`around_ts`) and forward paging (`after`), on SQLite here and
//! on PostgreSQL through on_postgres.rs: the page is one contiguous run of the conversation in
//! `seq` order around the first message stored at or after the moment, with cursors both ways.

mod common;

use common::{http, join, send_one, server, token, within, WAIT};
use lifeline_core::protocol::HistoryPage;

/// One history page: status, the decoded page (on 200) and `next_after`.
async fn history(
    s: &lifeline_server::RunningServer,
    t: &str,
    query: &str,
) -> (u16, Option<HistoryPage>, Option<u64>, String) {
    let resp = within(
        "GET /v1/history",
        http()
            .get(format!("{}/v1/history?v=1&conv=ar&{query}", s.base_url()))
            .bearer_auth(t)
            .send(),
    )
    .await
    .expect("history request");
    let status = resp.status().as_u16();
    let body = resp.text().await.expect("history body");
    if status != 200 {
        return (status, None, None, body);
    }
    let page = lifeline_core::protocol::decode_history(&body).expect("a history page");
    let json: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    let next_after = json.get("next_after").map(|v| v.as_u64().expect("a seq"));
    (status, Some(page), next_after, body)
}

fn seqs(page: &HistoryPage) -> Vec<u64> {
    page.messages.iter().map(|m| m.seq).collect()
}

#[tokio::test]
async fn history_around_a_moment_pages_both_ways() {
    let s = server().await;
    let t = token(&s, "ari");
    join(&s, &t, "ar").await;
    // Seven messages, each stored after the clock passed the previous one's `ts`, so every
    // message has a moment of its own.
    let mut seq = Vec::new();
    let mut ts = Vec::new();
    for i in 0..7 {
        if let Some(&last) = ts.last() {
            let deadline = std::time::Instant::now() + WAIT;
            while lifeline_server::token::unix_now_ms() <= last + 1 {
                assert!(
                    std::time::Instant::now() < deadline,
                    "clock did not advance"
                );
                tokio::time::sleep(std::time::Duration::from_millis(2)).await;
            }
        }
        seq.push(send_one(&s, &t, &format!("a{i}"), "ar", &format!("m{i}")).await);
        let (_, page, _, _) = history(&s, &t, "limit=1").await;
        ts.push(page.expect("page").messages[0].ts);
    }
    assert!(
        ts.windows(2).all(|w| w[0] < w[1]),
        "distinct moments: {ts:?}"
    );

    // Around the fourth message's moment, four messages: two before it, it and the next; more
    // exist on both sides.
    let (status, page, next_after, body) =
        history(&s, &t, &format!("around_ts={}&limit=4", ts[3])).await;
    assert_eq!(status, 200, "{body}");
    let page = page.unwrap();
    assert_eq!(seqs(&page), seq[1..5].to_vec(), "{body}");
    assert_eq!(page.next_before, Some(seq[1]));
    assert_eq!(next_after, Some(seq[4]));
    // A moment between two messages picks the later one as the pivot.
    let (_, between, _, body) = history(&s, &t, &format!("around_ts={}&limit=4", ts[2] + 1)).await;
    assert_eq!(seqs(&between.unwrap()), seq[1..5].to_vec(), "{body}");

    // Older from the page's first message, newer from its last: the rest, nothing twice.
    let (_, older, _, _) = history(&s, &t, &format!("before={}&limit=4", seq[1])).await;
    let older = older.unwrap();
    assert_eq!(seqs(&older), vec![seq[0]]);
    assert_eq!(older.next_before, None);
    let (status, newer, newer_after, body) =
        history(&s, &t, &format!("after={}&limit=4", seq[4])).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(seqs(&newer.unwrap()), seq[5..].to_vec(), "{body}");
    assert_eq!(
        newer_after, None,
        "the newest page has no next_after: {body}"
    );
    // Forward paging in small steps says where to continue.
    let (_, step, step_after, _) = history(&s, &t, &format!("after={}&limit=1", seq[4])).await;
    assert_eq!(seqs(&step.unwrap()), vec![seq[5]]);
    assert_eq!(step_after, Some(seq[5]));

    // After every message: the newest page; before every message: the oldest.
    let (_, late, late_after, _) =
        history(&s, &t, &format!("around_ts={}&limit=4", ts[6] + 1)).await;
    let late = late.unwrap();
    assert_eq!(seqs(&late), seq[3..].to_vec());
    assert_eq!((late.next_before, late_after), (Some(seq[3]), None));
    let (_, early, early_after, _) = history(&s, &t, "around_ts=0&limit=4").await;
    let early = early.unwrap();
    assert_eq!(seqs(&early), seq[..4].to_vec());
    assert_eq!((early.next_before, early_after), (None, Some(seq[3])));
    // A page of one is the pivot itself, with cursors both ways.
    let (_, one, one_after, _) = history(&s, &t, &format!("around_ts={}&limit=1", ts[3])).await;
    let one = one.unwrap();
    assert_eq!(seqs(&one), vec![seq[3]]);
    assert_eq!((one.next_before, one_after), (Some(seq[3]), Some(seq[3])));
    // The plain pages keep their shape: no next_after.
    let (_, _, plain_after, body) = history(&s, &t, "limit=2").await;
    assert_eq!(plain_after, None, "{body}");

    // Two bounds at once, or a moment that is not a number: a typed 400.
    for query in [
        "around_ts=5&before=3",
        "around_ts=5&after=3",
        "after=1&before_ts=9",
        "around_ts=noon",
    ] {
        let (status, _, _, body) = history(&s, &t, query).await;
        assert_eq!(status, 400, "{query}: {body}");
        assert!(body.contains("bad_frame"), "{query}: {body}");
    }
    s.shutdown().await;
}
