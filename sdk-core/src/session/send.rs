//! The send pipe: frames to the server on the live link — on a WebSocket as text frames, on SSE
//! and long polling as HTTP batches within the server's limits, one batch in flight at a time —
//! and what each batch's answer means (acknowledged, rate limited, too large and split, refused,
//! or failed and sent again). The outbox ([`crate::outbox`]) keeps the messages; the batch
//! ([`crate::batch`]) measures the body.

use super::*;

impl<D: FrameDecoder> Session<D> {
    /// Frames that must reach the server on every new link: the subscriptions.
    pub(super) fn rebuild_ops(&mut self) {
        self.pending_ops.clear();
        for conv in self.unsubscriptions.iter() {
            self.pending_ops
                .push(ClientFrame::Unsubscribe { conv: conv.clone() });
        }
        for conv in self.subscriptions.iter() {
            self.pending_ops
                .push(ClientFrame::Subscribe { conv: conv.clone() });
        }
    }

    pub(super) fn transmit_op(&mut self, now: Instant, frame: ClientFrame) {
        if self.active_link().is_none() {
            // Subscriptions are re-asserted on the next link; typing is never queued.
            return;
        }
        self.pending_ops.push(frame);
        self.flush(now);
    }

    /// Transmits pending frames and due messages on the live link: on a WebSocket every frame at
    /// once, one text frame each; on SSE and long polling one HTTP batch within the server's
    /// limits, one batch in flight at a time, none while a failed batch waits to be retried.
    pub(super) fn flush(&mut self, now: Instant) {
        let Some(id) = self.active else {
            return;
        };
        let Some(link) = self.link(id) else {
            return;
        };
        if !link.is_live() {
            return;
        }
        match link.kind {
            TransportKind::WebSocket => {
                let socket = link.socket.expect("a WebSocket link has a socket");
                for op in std::mem::take(&mut self.pending_ops) {
                    let text = protocol::encode(&op);
                    self.actions.push_back(Action::SendText { socket, text });
                }
                let actions = &mut self.actions;
                self.outbox.due_while(
                    id,
                    now,
                    |_| true,
                    |p| {
                        let text = protocol::encode_send(&p.id.0, &p.conv, &p.body);
                        actions.push_back(Action::SendText { socket, text });
                    },
                );
            }
            TransportKind::Sse | TransportKind::LongPoll => {
                if link.send.is_some() || link.send_retry_at.is_some() {
                    return;
                }
                let mut body = self.batch_limits.body();
                let taken = self
                    .pending_ops
                    .iter()
                    .take_while(|op| body.push(op))
                    .count();
                let ops: Vec<ClientFrame> = self.pending_ops.drain(..taken).collect();
                let mut due = Vec::new();
                self.outbox.due_while(
                    id,
                    now,
                    |p| body.push(&p.frame()),
                    |p| due.push(p.id.clone()),
                );
                if body.frames() == 0 {
                    return;
                }
                let body = body.finish();
                let request = RequestId(self.fresh_id());
                self.requests.insert(request, Purpose::Send { link: id });
                let deadline = now + self.config.connect_timeout;
                let link = self.link_mut(id).expect("the link was found above");
                link.send = Some(SendRequest {
                    request,
                    ids: due,
                    ops,
                    bytes: body.len(),
                    deadline,
                });
                self.actions.push_back(Action::Http {
                    request,
                    method: HttpMethod::Post,
                    url: self.config.endpoint.send_url(),
                    bearer: self.creds.token().map(str::to_string),
                    body: Some(body),
                });
            }
        }
    }

    pub(super) fn on_send_response(
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
        let Some(batch) = link.send.take() else {
            return;
        };
        match status {
            200 => match self.decoder.server_batch(body) {
                Ok(response) => {
                    for frame in response.frames {
                        self.on_frame(now, id, frame);
                    }
                    // A send the server did not answer is sent again shortly.
                    let unanswered: Vec<MsgId> = batch
                        .ids
                        .iter()
                        .filter(|m| self.outbox_contains(m))
                        .cloned()
                        .collect();
                    if !unanswered.is_empty() {
                        self.outbox.mark_unsent(&unanswered);
                        if let Some(link) = self.link_mut(id) {
                            link.send_retry_at = Some(now + SEND_RETRY_DELAY);
                        }
                    }
                    self.flush(now);
                }
                Err(_) => self.send_batch_failed(now, id, Some(batch)),
            },
            401 => {
                self.requeue_batch(batch);
                self.auth_rejected(now, error_detail(&self.decoder, body));
            }
            429 | 503 => {
                let wait = retry_after.unwrap_or(SEND_RETRY_DELAY);
                if let Some(first) = batch.ids.first() {
                    self.outbox.hold_from(&first.0, now + wait);
                }
                self.pending_ops.splice(0..0, batch.ops);
                if let Some(link) = self.link_mut(id) {
                    link.send_retry_at = Some(now + wait);
                }
            }
            413 if self
                .batch_limits
                .split_after_too_large(batch.ids.len() + batch.ops.len(), batch.bytes) =>
            {
                // Each frame may be legal on its own: send them again in smaller batches.
                self.requeue_batch(batch);
                self.flush(now);
            }
            400 | 403 | 413 => {
                let code = self
                    .decoder
                    .http_error(body)
                    .map(|e| e.code)
                    .unwrap_or(ErrorCode::BadFrame);
                for msg in batch.ids {
                    if let Some(entry) = self.outbox.remove(&msg.0) {
                        self.events.push_back(Event::SendFailed {
                            id: entry.id,
                            failure: SendFailure::Rejected {
                                code,
                                message: error_detail(&self.decoder, body),
                            },
                        });
                    }
                }
                self.check_drained(now);
                self.flush(now);
            }
            _ => self.send_batch_failed(now, id, Some(batch)),
        }
    }

    pub(super) fn outbox_contains(&self, id: &MsgId) -> bool {
        self.outbox.iter().any(|p| &p.id == id)
    }

    pub(super) fn send_batch_failed(&mut self, now: Instant, id: u64, batch: Option<SendRequest>) {
        let batch = match batch {
            Some(b) => Some(b),
            None => self.link_mut(id).and_then(|l| l.send.take()),
        };
        if let Some(batch) = batch {
            self.requeue_batch(batch);
        }
        if let Some(link) = self.link_mut(id) {
            link.send_retry_at = Some(now + SEND_RETRY_DELAY);
        }
    }

    pub(super) fn requeue_batch(&mut self, batch: SendRequest) {
        self.outbox.mark_unsent(&batch.ids);
        self.pending_ops.splice(0..0, batch.ops);
    }

    /// An HTTP send batch went unanswered past its deadline (a dead pooled connection): it is
    /// abandoned and its frames sent again.
    pub(super) fn send_deadline_passed(&mut self, now: Instant, id: u64) {
        let batch = self.link_mut(id).and_then(|l| l.send.take());
        if let Some(batch) = batch {
            self.requests.remove(&batch.request);
            self.actions.push_back(Action::AbortHttp {
                request: batch.request,
            });
            self.send_batch_failed(now, id, Some(batch));
        }
    }
}
