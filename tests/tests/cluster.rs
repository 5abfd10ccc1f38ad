//! Three server instances on one real PostgreSQL behind one address (the fault proxy, standing in
//! for a round-robin balancer): native SDK clients talk while the instance they are on is cut off
//! abruptly (every connection reset, the instance never reached again), twice; the clients
//! reconnect to the next instance and resume from their cursors there. Every member must get
//! every message once and in order (tests/src/checker.rs), every send must be acknowledged.
//! The same with instances in processes of their own, killed with SIGKILL.

use lifeline::TransportKind;
use lifeline_server::{Secret, ServerConfig};
use lifeline_tests::child_server::ChildServer;
use lifeline_tests::crowd;
use lifeline_tests::harness::{self, WAIT};
use lifeline_tests::proxy::FaultProxy;
use lifeline_tests::services::pg;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_move_to_other_instances_when_theirs_is_cut_off_mid_stream() {
    let url = tokio::task::spawn_blocking(|| pg().new_database())
        .await
        .unwrap();
    let config = ServerConfig {
        postgres: Some(Secret(url)),
        ..harness::server_config()
    };
    let first = harness::start(config.clone()).await;
    let second = harness::start(config.clone()).await;
    let third = harness::start(config).await;
    let proxy = FaultProxy::start(first.addr()).await;
    let crowd = crowd::gather(&first, &proxy.url(), "cluster", 3, 2, |b| b).await;
    crowd
        .talk_through(300, Duration::from_millis(5), async {
            let (_, _, rec) = &crowd.listeners[0];
            for (next, at) in [(second.addr(), 150), (third.addr(), 450)] {
                rec.wait_messages(at, WAIT).await;
                let marks = crowd.marks();
                proxy.upstream(next);
                proxy.reset_all();
                crowd
                    .wait_all_connected_after(&marks, TransportKind::WebSocket)
                    .await;
            }
        })
        .await;
    let _ = (first, second, third);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_move_to_other_instances_when_theirs_is_killed_with_sigkill() {
    let url = tokio::task::spawn_blocking(|| pg().new_database())
        .await
        .unwrap();
    let program = env!("CARGO_BIN_EXE_lifeline-test-server");
    let mut first = ChildServer::start_on_postgres(program, harness::HEARTBEAT_MS, &url);
    let mut second = ChildServer::start_on_postgres(program, harness::HEARTBEAT_MS, &url);
    // The last instance runs in this process (it also signs the crowd's tokens).
    let third = harness::start(ServerConfig {
        postgres: Some(Secret(url)),
        ..harness::server_config()
    })
    .await;
    let proxy = FaultProxy::start(first.addr()).await;
    let crowd = crowd::gather(&third, &proxy.url(), "killed", 3, 2, |b| b).await;
    crowd
        .talk_through(300, Duration::from_millis(5), async {
            let (_, _, rec) = &crowd.listeners[0];
            rec.wait_messages(150, WAIT).await;
            let marks = crowd.marks();
            proxy.upstream(second.addr());
            first.kill();
            proxy.reset_all();
            crowd
                .wait_all_connected_after(&marks, TransportKind::WebSocket)
                .await;
            rec.wait_messages(450, WAIT).await;
            let marks = crowd.marks();
            proxy.upstream(third.addr());
            second.kill();
            proxy.reset_all();
            crowd
                .wait_all_connected_after(&marks, TransportKind::WebSocket)
                .await;
        })
        .await;
}
