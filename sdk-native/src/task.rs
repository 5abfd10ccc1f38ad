//! A spawned task that is aborted when its handle is dropped, so that forgetting a socket or a
//! request in the driver is enough to stop its I/O.
//!
//! Nothing else: what the task does is up to its module (ws, sse, http).

use tokio::task::JoinHandle;

/// Aborts the task on drop.
#[derive(Debug)]
pub(crate) struct TaskGuard(JoinHandle<()>);

impl TaskGuard {
    pub(crate) fn spawn<F>(future: F) -> Self
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        TaskGuard(tokio::spawn(future))
    }
}

impl Drop for TaskGuard {
    fn drop(&mut self) {
        self.0.abort();
    }
}
