//! Long polling: issuing the next poll on the live link with the wait the keep-alive allows, and
//! what a poll's answer means (frames, a gateway's timeout, a failure).

use super::*;

/// How long a long poll may run past the time the server may hold it.
const POLL_GRACE: Duration = Duration::from_secs(5);

impl<D: FrameDecoder> Session<D> {
    pub(super) fn issue_poll(&mut self, now: Instant, id: u64) {
        let request = RequestId(self.fresh_id());
        let wait_ms = self.keepalive.poll_wait_ms();
        let mut url = self
            .config
            .endpoint
            .poll_url(self.resume.cursor(), wait_ms, false);
        if let Some(link) = self.link(id) {
            url.push_str(link.carry.query());
        }
        let bearer = self.creds.token().map(str::to_string);
        let deadline = Instant::from_micros(
            now.as_micros()
                .saturating_add(wait_ms.saturating_mul(1_000)),
        ) + POLL_GRACE;
        let Some(link) = self.link_mut(id) else {
            return;
        };
        link.poll = Some(PollRequest {
            request,
            sent_at: now,
            deadline,
        });
        self.requests.insert(request, Purpose::Poll { link: id });
        self.actions.push_back(Action::Http {
            request,
            method: HttpMethod::Get,
            url,
            bearer,
            body: None,
        });
    }

    pub(super) fn on_poll_response(
        &mut self,
        now: Instant,
        id: u64,
        status: u16,
        retry_after: Option<Duration>,
        body: &str,
    ) {
        let Some(link) = self.link_mut(id) else {
            return;
        };
        let sent_at = link.poll.take().map_or(now, |p| p.sent_at);
        let live = link.is_live();
        if status == 504 && live && self.active == Some(id) {
            // A gateway gave up holding the poll: its timeout is shorter than our wait. Poll on
            // with a shorter wait; the link itself is fine.
            let elapsed_ms = now.as_micros().saturating_sub(sent_at.as_micros()) / 1_000;
            if self.keepalive.gateway_timeout(elapsed_ms) {
                self.issue_poll(now, id);
                return;
            }
        }
        if status != 200 {
            let failure = TransportFailure::status(
                status,
                retry_after,
                http_detail(&self.decoder, status, body),
            );
            self.on_transport_failure(now, id, failure);
            return;
        }
        let Some(link) = self.link_mut(id) else {
            return;
        };
        link.liveness.heard(now);
        let kind = link.kind;
        let batch: Batch<ServerFrame> = match self.decoder.server_batch(body) {
            Ok(batch) => batch,
            Err(e) => {
                self.events.push_back(Event::BadFrame {
                    transport: kind,
                    error: e.clone(),
                });
                let cause = self.loss_cause(id, text!("bad poll response: ", e.describe()));
                self.link_failed(now, id, cause, FailureWeight::Ordinary, None);
                return;
            }
        };
        for frame in batch.frames {
            if self.link(id).is_none() {
                return;
            }
            self.on_frame(now, id, frame);
        }
        match self.link(id).map(Link::is_live) {
            // Only the live link polls on; a link that lost a race is gone already.
            Some(true) if self.active == Some(id) => self.issue_poll(now, id),
            Some(true) => {}
            Some(false) => {
                // The first poll must answer with hello.
                self.link_failed(
                    now,
                    id,
                    Cause::FirstFrameTimeout {
                        transport: TransportKind::LongPoll,
                    },
                    FailureWeight::Definitive,
                    None,
                );
            }
            None => {}
        }
    }
}
