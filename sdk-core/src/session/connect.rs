//! Connecting: starting attempts, racing the rung below a slow one, probing a better rung while
//! degraded (and making an SSE probe prove prompt delivery), a link going live on `hello`, and
//! what a link's failure means: how it is classified (a dead host, a bad rung, a fatal error),
//! what it costs its rung on the ladder, and whether the session retries.
//!
//! The ladder ([`crate::ladder`]) keeps the rungs' record; the retry delays are
//! [`crate::retry`]'s decisions.

use super::*;

/// A proving probe's copy of a message arriving this much later than the live link's shows a
/// rung that holds frames back.
const PROOF_LAG: Duration = Duration::from_secs(1);

impl<D: FrameDecoder> Session<D> {
    pub(super) fn start_attempt(&mut self, now: Instant, cause: Cause) {
        if self.state.is_final() {
            return;
        }
        self.timers.clear(TimerReason::Retry);
        if let Some(fetch) = self.creds.needs_fetch() {
            if fetch {
                self.actions.push_back(Action::FetchToken);
            }
            self.set_reconnecting(None, None, cause);
            return;
        }
        if !self.online {
            self.set_reconnecting(None, Some(Cause::Offline), Cause::Offline);
            return;
        }
        let attempt = self.retries.begin(now);
        let kind = self.ladder.current();
        self.open_link(now, kind);
        // On a first visit nothing says whether the best rung works here: the rung below starts
        // racing after a short head start (and at once if the best rung fails first, see
        // `link_failed`); whichever says `hello` first carries the session, and a better rung
        // still opening is probed again at once, from the cursor (see `on_hello`).
        let race_after = if self.is_first_visit() {
            self.config.first_visit_race_after
        } else {
            self.config.race_after
        };
        let race_at = self.ladder.below(kind).map(|_| now + race_after);
        self.timers.set(TimerReason::Race, race_at);
        self.timers.set(
            TimerReason::Unreachable,
            Some(now + self.config.race_after + self.config.race_after),
        );
        self.set_state(
            State::Connecting {
                transport: kind,
                attempt,
            },
            cause,
        );
    }

    /// The first attempt of a session that has no remembered rung and to which nothing has
    /// worked yet.
    pub(super) fn is_first_visit(&self) -> bool {
        self.retries.attempt() == 1
            && self.ladder.last_worked().is_none()
            && self.config.initial_transport.is_none()
    }

    /// No link of the attempt has opened `2 × race_after` after it began: nothing answers at the
    /// server's address (a black hole, a dead network). Waiting out every link's connect timeout
    /// would only delay the next attempt, whose fresh connection is what succeeds once the path is
    /// back; no rung is blamed.
    pub(super) fn give_up_unreachable_attempt(&mut self, now: Instant) {
        if self.active.is_some()
            || self.links.is_empty()
            || self
                .links
                .iter()
                .any(|l| !matches!(l.phase, Phase::Opening))
        {
            return;
        }
        let transport = self.ladder.current();
        self.drop_links_except(None);
        self.timers.clear(TimerReason::Race);
        self.schedule_retry(now, Cause::ConnectTimeout { transport }, None);
    }

    pub(super) fn start_race(&mut self, now: Instant) {
        if self.active.is_some() || self.links.len() != 1 {
            return;
        }
        let kind = self.links[0].kind;
        if self.links[0].is_live() {
            return;
        }
        if let Some(below) = self.ladder.below(kind) {
            self.open_link(now, below);
        }
    }

    pub(super) fn start_probe(&mut self, now: Instant) {
        if self.restore_carry(now) {
            return;
        }
        let Some(active) = self.active_link() else {
            return;
        };
        if self.links.len() > 1 {
            return;
        }
        let live = active.kind;
        if let Some((above, needs_proof)) = self.probing.next(&self.ladder, live) {
            let id = self.open_link(now, above);
            if let Some(link) = self.link_mut(id) {
                link.needs_proof = needs_proof;
            }
        }
    }

    /// Opens a link of the messages side on `kind`.
    pub(super) fn open_link(&mut self, now: Instant, kind: TransportKind) -> u64 {
        self.open_carrying(now, kind, self.messages_carry())
    }

    /// Opens a link on `kind` whose stream carries `carry` (its socket or first poll asked for)
    /// and adds it to the links of the messages side.
    pub(super) fn open_carrying(&mut self, now: Instant, kind: TransportKind, carry: Carry) -> u64 {
        let id = self.fresh_id();
        let mut link = Link::new(id, kind, now, self.config.liveness_timeout);
        link.opened_with_cursor = self.resume.cursor();
        link.carry = carry;
        let carry = carry.query();
        let token = self.creds.token().map(str::to_string);
        let endpoint = self.config.endpoint.clone();
        let placement = self.config.stream_token;
        match kind {
            TransportKind::WebSocket | TransportKind::Sse => {
                let socket = SocketId(id);
                link.socket = Some(socket);
                let in_query = placement.in_query(token.as_deref());
                let (socket_kind, mut url) = if kind == TransportKind::WebSocket {
                    (
                        SocketKind::WebSocket,
                        endpoint.websocket_url(in_query, self.resume.cursor()),
                    )
                } else {
                    (
                        SocketKind::EventSource,
                        endpoint.sse_url(in_query, self.resume.cursor()),
                    )
                };
                url.push_str(carry);
                self.actions.push_back(Action::OpenSocket {
                    socket,
                    kind: socket_kind,
                    url,
                    bearer: placement.in_header(token.as_deref()),
                });
            }
            TransportKind::LongPoll => {
                let request = RequestId(self.fresh_id());
                self.requests.insert(request, Purpose::Poll { link: id });
                link.poll = Some(PollRequest {
                    request,
                    sent_at: now,
                    deadline: now + self.config.connect_timeout,
                });
                let mut url =
                    endpoint.poll_url(self.resume.cursor(), self.keepalive.poll_wait_ms(), true);
                url.push_str(carry);
                self.actions.push_back(Action::Http {
                    request,
                    method: HttpMethod::Get,
                    url,
                    bearer: token,
                    body: None,
                });
            }
        }
        self.links.push(link);
        id
    }

    /// The server's `hello` on link `id`: the link goes live (or, as a probe that must prove
    /// prompt delivery first, starts proving).
    pub(super) fn on_hello(&mut self, now: Instant, id: u64, hello: Hello) {
        if hello.v != PROTOCOL_VERSION {
            let error = Cause::UnsupportedVersion;
            self.finish(now, State::Failed { error }, Cause::UnsupportedVersion);
            return;
        }
        if self.ephemeral_by_id(id).is_some() {
            return self.ephemeral_hello(now, id, &hello);
        }
        let Some(link) = self.link_mut(id) else {
            return;
        };
        if link.is_live() || matches!(link.phase, Phase::Proving { .. }) {
            return;
        }
        if link.needs_proof {
            link.phase = Phase::proving(now, hello.heartbeat_ms);
            return;
        }
        let kind = link.kind;
        let previous = self.active_link().map(|l| l.kind);
        let better_pending = previous.is_none() && self.better_rung_opening(id, kind);
        self.go_live(now, id, &hello);
        self.schedule_after_connecting(now, kind, previous, better_pending);
        let degraded = self.is_degraded(kind);
        let cause = match previous {
            Some(from) if from != kind => Cause::Upgraded { from },
            _ => Cause::Opened,
        };
        let transport = kind;
        self.set_state(
            State::Connected {
                transport,
                degraded,
            },
            cause,
        );
        self.batch_limits = BatchLimits::advertised(&hello);
        self.rebuild_ops();
        self.flush(now);
        // Under the hybrid strategy: the ephemeral WebSocket, if it waits for a live session, and
        // the carry this link should have if the WebSocket came or went while it opened.
        self.open_ephemeral(now);
        self.restore_carry(now);
        // A long poll's `hello` always comes in a poll response, and `on_poll_response` issues the
        // next poll once the response's frames are handled: issuing one here too would keep two
        // polls running for the rest of the session.
    }

    /// A better rung than `kind` of the same attempt is still opening on a link other than `id`
    /// (it lost the race, or the first visit's head start was too short).
    pub(super) fn better_rung_opening(&self, id: u64, kind: TransportKind) -> bool {
        let above = self.ladder.above(kind);
        self.links
            .iter()
            .any(|l| l.id != id && Some(l.kind) == above)
    }

    /// Link `id` carries the session from now on: every other link goes, its liveness starts,
    /// the token and the rung are known to work, the cursor follows the server's resume point.
    pub(super) fn go_live(&mut self, now: Instant, id: u64, hello: &Hello) {
        self.drop_links_except(Some(id));
        let Some((kind, opened_with)) = self.mark_live(now, id, hello) else {
            return;
        };
        self.active = Some(id);
        self.creds.accepted();
        if self.ladder.record_success(kind) {
            self.events
                .push_back(Event::TransportWorked { transport: kind });
        }
        self.resume_from(hello, opened_with);
    }

    /// Link `id` said `hello`: it is live, its liveness follows the server's heartbeat and its
    /// ping beat starts. Its rung and the cursor it was opened with.
    pub(super) fn mark_live(
        &mut self,
        now: Instant,
        id: u64,
        hello: &Hello,
    ) -> Option<(TransportKind, Option<Seq>)> {
        let ping_every_us = self.ping_interval_for(hello.heartbeat_ms);
        let liveness_timeout = self.config.liveness_timeout;
        let link = self.link_mut(id)?;
        link.phase = Phase::Live;
        link.liveness
            .went_live(now, hello.heartbeat_ms, liveness_timeout, ping_every_us);
        Some((link.kind, link.opened_with_cursor))
    }

    /// The timers once a link on `kind` went live: no retry, race or unreachable deadline any
    /// more; a stable period for a fresh connection (an upgrade continues a healthy session);
    /// a probe of a better rung at once if one was still opening (from the cursor, so that it
    /// takes over losslessly), later while degraded, never otherwise.
    pub(super) fn schedule_after_connecting(
        &mut self,
        now: Instant,
        kind: TransportKind,
        previous: Option<TransportKind>,
        better_pending: bool,
    ) {
        self.timers.clear(TimerReason::Retry);
        self.timers.clear(TimerReason::Race);
        self.timers.clear(TimerReason::Unreachable);
        if previous.is_none() {
            self.timers
                .set(TimerReason::Stable, Some(now + self.config.stable_after));
        }
        self.timers.clear(TimerReason::Probe);
        if better_pending {
            self.timers.set(TimerReason::Probe, Some(now));
        } else {
            let worth_probing = self.ladder.is_degraded(kind) && self.ladder.above(kind).is_some();
            let delay = self.probing.after_connected(worth_probing, &mut self.rng);
            self.timers
                .set(TimerReason::Probe, delay.map(|delay| now + delay));
        }
    }

    /// How often a live WebSocket pings, in microseconds: the configured interval, but at most
    /// half the server's `heartbeat_ms` and under a middlebox idle timeout learned from cuts.
    pub(super) fn ping_interval_for(&self, heartbeat_ms: u64) -> u64 {
        // `Instant + Duration` is the one (not inlined) conversion of a duration to microseconds.
        let configured_us = (Instant::from_micros(0) + self.config.ping_interval).as_micros();
        self.keepalive
            .ping_interval_ms(configured_us / 1_000, heartbeat_ms)
            .saturating_mul(1_000)
    }

    /// A heartbeat or message on a probe proving prompt delivery: it is judged, never delivered
    /// (the live link delivers).
    pub(super) fn on_proving_frame(&mut self, now: Instant, id: u64, frame: &ServerFrame) {
        let (late, prompt) = match frame {
            ServerFrame::Msg(m) => {
                // Behind the live link's copy, or ahead of the live link.
                let copy_at = self.resume.delivered_at(m.seq);
                (
                    copy_at.is_some_and(|at| now > at + PROOF_LAG),
                    self.resume.is_ahead(m.seq),
                )
            }
            ServerFrame::Heartbeat => (false, true),
            _ => return,
        };
        if late {
            self.link_failed(now, id, held_back(), FailureWeight::Neutral, None);
        } else if let Some(Link {
            phase:
                Phase::Proving {
                    judged_from,
                    settles_at,
                    ..
                },
            ..
        }) = self.link_mut(id)
        {
            // A heartbeat, or (a busy stream has none) a message ahead of the live link, half a
            // heartbeat into the stream: prompt, unless a late copy shows up meanwhile.
            if prompt && now >= *judged_from {
                settles_at.get_or_insert(now + PROOF_LAG);
            }
        }
    }

    pub(super) fn loss_cause(&self, id: u64, detail: String) -> Cause {
        let link = self.link(id);
        let transport = link.map_or(TransportKind::WebSocket, |l| l.kind);
        if link.is_some_and(Link::is_live) {
            Cause::TransportLost { transport, detail }
        } else {
            Cause::OpenFailed {
                transport,
                status: None,
                detail,
            }
        }
    }

    /// A link's socket or request failed. What it means:
    /// - the server's certificate refused: fatal (the same certificate is refused on every rung
    ///   and every retry; other TLS failures are left to the ladder);
    /// - 401: the token;
    /// - 429 and 503: the server is busy; no rung is blamed, its `Retry-After` is a floor;
    /// - another 4xx: this rung is refused here (a proxy): it counts fully against the rung;
    /// - refused, unresolved, unreachable: nothing answers at the server's address, so every
    ///   rung would fail alike: retry the same rung, do not walk down the ladder;
    /// - anything else (a reset, a browser's opaque error): an ordinary failure of the rung,
    ///   after asking a browser's event stream for its status ([`Session::ask_sse_status`]).
    pub(super) fn on_transport_failure(
        &mut self,
        now: Instant,
        id: u64,
        failure: TransportFailure,
    ) {
        if self.ask_sse_status(now, id, &failure) {
            return;
        }
        let Some(link) = self.link(id) else {
            return;
        };
        let transport = link.kind;
        if failure.kind == FailureKind::Certificate && failure.status.is_none() {
            let cause = Cause::TlsRejected {
                transport,
                detail: failure.detail,
            };
            let error = cause.clone();
            self.finish(now, State::Failed { error }, cause);
            return;
        }
        match failure.status {
            Some(401) => self.auth_rejected(now, failure.detail),
            Some(status @ (429 | 503)) => {
                let hint = failure.retry_after.map(DelayHint::AtLeast);
                let cause = if status == 429 {
                    Cause::ServerBusy
                } else {
                    self.loss_cause(id, failure.detail)
                };
                self.link_failed(now, id, cause, FailureWeight::Neutral, hint);
            }
            Some(status) if (400..500).contains(&status) => {
                let cause = Cause::OpenFailed {
                    transport,
                    status: Some(status),
                    detail: failure.detail,
                };
                self.link_failed(now, id, cause, FailureWeight::Definitive, None);
            }
            status => {
                let host_down = matches!(
                    failure.kind,
                    FailureKind::Refused | FailureKind::Dns | FailureKind::Unreachable
                );
                let weight = if host_down {
                    FailureWeight::Neutral
                } else {
                    FailureWeight::Ordinary
                };
                let cause = if link.is_live() {
                    Cause::TransportLost {
                        transport,
                        detail: failure.detail,
                    }
                } else {
                    Cause::OpenFailed {
                        transport,
                        status,
                        detail: failure.detail,
                    }
                };
                self.link_failed(now, id, cause, weight, None);
            }
        }
    }

    /// A browser's `EventSource` hides why it could not open: a 401 or a proxy's 403 looks like a
    /// network error. An SSE attempt that failed before opening with neither a status nor a
    /// kind asks once, with a plain GET of the same URL; the answer is then judged as the
    /// failure. The link's connect deadline bounds the wait. True when the question was asked.
    fn ask_sse_status(&mut self, now: Instant, id: u64, failure: &TransportFailure) -> bool {
        let Some(link) = self.link(id) else {
            return false;
        };
        if link.kind != TransportKind::Sse
            || !matches!(link.phase, Phase::Opening)
            || link.socket.is_none()
            || failure.status.is_some()
            || failure.kind != FailureKind::Other
        {
            return false;
        }
        let (cursor, carry) = (link.opened_with_cursor, link.carry);
        let request = RequestId(self.fresh_id());
        let token = self.creds.token();
        let placement = self.config.stream_token;
        let mut url = self
            .config
            .endpoint
            .sse_url(placement.in_query(token), cursor);
        url.push_str(carry.query());
        let bearer = placement.in_header(token);
        if let Some(link) = self.link_mut(id) {
            // The socket is gone (later reports about it are ignored); the question is in flight
            // like a poll, abandoned with the link.
            link.socket = None;
            link.poll = Some(PollRequest {
                request,
                sent_at: now,
                deadline: now,
            });
        }
        self.requests
            .insert(request, Purpose::SseStatus { link: id });
        self.actions.push_back(Action::Http {
            request,
            method: HttpMethod::Get,
            url,
            bearer,
            body: None,
        });
        true
    }

    pub(super) fn link_failed(
        &mut self,
        now: Instant,
        id: u64,
        cause: Cause,
        weight: FailureWeight,
        hint: Option<DelayHint>,
    ) {
        if self.ephemeral_by_id(id).is_some() {
            return self.ephemeral_failed(now, cause, hint);
        }
        let was_active = self.active == Some(id);
        let Some(link) = self.drop_link(id) else {
            return;
        };
        if was_active
            && link.kind == TransportKind::WebSocket
            && link.going_away.is_none()
            && matches!(cause, Cause::TransportLost { .. })
        {
            // A cut after the same idle age twice is a middlebox's idle timeout: ping under it.
            self.keepalive.websocket_cut(link.liveness.idle_ms(now));
        }
        let hint = hint
            .or(link.going_away.map(DelayHint::Within))
            .or(link.retry_hint.map(DelayHint::AtLeast));
        // An attempt's failure counts against its rung; so does a live link's failure that says
        // the rung cannot work here (frames held back); a probe's does not.
        let counts = if was_active {
            weight == FailureWeight::Definitive
        } else {
            self.active.is_none()
        };
        if counts {
            self.ladder.record_failure(link.kind, weight);
        }
        if was_active {
            self.timers.clear(TimerReason::Stable);
            self.timers.clear(TimerReason::Probe);
            self.drop_links_except(None);
            self.schedule_retry(now, cause, hint);
        } else if self.active.is_some() {
            // A probe failed: the live link carries on; probe again later.
            let delay = self.probing.failed(link.needs_proof, &mut self.rng);
            self.timers.set(TimerReason::Probe, Some(now + delay));
        } else {
            let below = self.ladder.below(link.kind);
            if self.links.is_empty()
                && self.timers.is_set(TimerReason::Race)
                && weight != FailureWeight::Neutral
                && self.is_first_visit()
                && below.is_some()
            {
                // A first visit whose best rung failed (a reset or refused upgrade) before the
                // race: the rung below starts now, not after a backoff.
                self.timers.clear(TimerReason::Race);
                if let Some(below) = below {
                    self.open_link(now, below);
                    let race_at = self
                        .ladder
                        .below(below)
                        .map(|_| now + self.config.first_visit_race_after);
                    self.timers.set(TimerReason::Race, race_at);
                }
            }
            if let Some(other) = self.links.first() {
                let transport = other.kind;
                let attempt = self.retries.attempt();
                self.set_state(State::Connecting { transport, attempt }, cause);
            } else {
                self.timers.clear(TimerReason::Race);
                self.timers.clear(TimerReason::Unreachable);
                self.schedule_retry(now, cause, hint);
            }
        }
    }

    pub(super) fn schedule_retry(&mut self, now: Instant, cause: Cause, hint: Option<DelayHint>) {
        if self.state.is_final() {
            return;
        }
        let Some(delay) = self.retries.next_delay(now, hint, &mut self.rng) else {
            let error = Cause::RetryLimit;
            self.finish(now, State::Failed { error }, cause);
            return;
        };
        let retry_at = (self.online && !self.creds.is_fetching()).then(|| now + delay);
        self.timers.set(TimerReason::Retry, retry_at);
        self.set_reconnecting(retry_at, Some(cause.clone()), cause);
    }

    /// The connection proved itself (it stayed up `stable_after`, or it delivered data): past
    /// failures are forgotten, the backoff and the attempt counter start over.
    pub(super) fn forget_failures(&mut self) {
        self.timers.clear(TimerReason::Stable);
        self.retries.forget();
    }
}

/// The loss of an SSE stream (live or proving) that holds frames back: only SSE is judged so.
#[inline(never)]
pub(super) fn held_back() -> Cause {
    Cause::TransportLost {
        transport: TransportKind::Sse,
        detail: "frames arrive late (held back by a proxy?)".into(),
    }
}
