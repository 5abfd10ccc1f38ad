//! Server outages while clients talk: a restart mid-stream (storage kept), the server down for a
//! while, and the server shedding every client at once. The proxy stays in front so that the
//! clients keep one address while the server behind it changes.

use lifeline::{Cause, Event, State, TransportKind};
use lifeline_server::{RunningServer, ServerConfig};
use lifeline_tests::crowd;
use lifeline_tests::harness::{self, WAIT};
use lifeline_tests::proxy::FaultProxy;
use std::sync::Mutex;
use std::time::Duration;

fn persistent(dir: &std::path::Path) -> ServerConfig {
    ServerConfig {
        data_dir: Some(dir.to_path_buf()),
        ..harness::server_config()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_restarts_mid_stream() {
    let dir = tempfile::tempdir().unwrap();
    let server = harness::start(persistent(dir.path())).await;
    let proxy = FaultProxy::start(server.addr()).await;
    let crowd = crowd::gather(&server, &proxy.url(), "restart", 2, 2, |b| b).await;
    let holder: Mutex<Option<RunningServer>> = Mutex::new(Some(server));
    crowd
        .talk_through(100, Duration::from_millis(15), async {
            let (_, _, rec) = &crowd.listeners[0];
            rec.wait_messages(30, WAIT).await;
            let marks = crowd.marks();
            let old = holder.lock().unwrap().take().unwrap();
            old.shutdown().await;
            let new = harness::start(persistent(dir.path())).await;
            proxy.upstream(new.addr());
            holder.lock().unwrap().replace(new);
            crowd
                .wait_all_state_after(&marks, "going away", |_, cause| {
                    matches!(cause, Cause::ServerGoingAway | Cause::TransportLost { .. })
                })
                .await;
            crowd
                .wait_all_connected_after(&marks, TransportKind::WebSocket)
                .await;
        })
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_down_for_a_while() {
    let dir = tempfile::tempdir().unwrap();
    let server = harness::start(persistent(dir.path())).await;
    let proxy = FaultProxy::start(server.addr()).await;
    let crowd = crowd::gather(&server, &proxy.url(), "down", 2, 1, |b| b).await;
    let holder: Mutex<Option<RunningServer>> = Mutex::new(Some(server));
    crowd
        .talk_through(80, Duration::from_millis(20), async {
            let (_, _, rec) = &crowd.listeners[0];
            rec.wait_messages(20, WAIT).await;
            let marks = crowd.marks();
            let old = holder.lock().unwrap().take().unwrap();
            old.shutdown().await;
            // Down until every client has failed at least three attempts to reconnect.
            for ((name, _, rec), &mark) in crowd.clients().zip(&marks) {
                rec.wait_for(&format!("{name}: three failed attempts"), WAIT, |events| {
                    events
                        .iter()
                        .skip(mark)
                        .filter(|e| {
                            matches!(
                                e,
                                Event::StateChanged {
                                    to: State::Reconnecting { .. },
                                    ..
                                }
                            )
                        })
                        .count()
                        >= 3
                })
                .await;
            }
            let new = harness::start(persistent(dir.path())).await;
            proxy.upstream(new.addr());
            holder.lock().unwrap().replace(new);
            crowd
                .wait_all_connected_after(&marks, TransportKind::WebSocket)
                .await;
        })
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_sheds_every_client_at_once() {
    let server = harness::server().await;
    let url = server.base_url();
    let crowd = crowd::gather(&server, &url, "shed", 3, 3, |b| b).await;
    crowd
        .talk_through(100, Duration::from_millis(10), async {
            let (_, _, rec) = &crowd.listeners[0];
            rec.wait_messages(30, WAIT).await;
            for _ in 0..2 {
                let marks = crowd.marks();
                server.drop_connections();
                crowd
                    .wait_all_state_after(&marks, "the connection lost", |to, _| {
                        matches!(to, State::Reconnecting { .. })
                    })
                    .await;
                crowd
                    .wait_all_connected_after(&marks, TransportKind::WebSocket)
                    .await;
            }
        })
        .await;
}
