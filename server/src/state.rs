//! The state every handler shares: configuration, storage, the writer, the membership cache, the
//! fan-out hub, limits, fault switches and the connection signals.
//!
//! It only wires the parts together; behaviour lives in the parts' own modules.

use crate::config::ServerConfig;
use crate::conns::Conns;
use crate::faults::Faults;
use crate::hub::Hub;
use crate::limits::Limits;
use crate::members::Members;
use crate::store::Store;
use crate::writer::Writer;
use std::sync::Arc;

/// Everything a handler may need.
pub struct Shared {
    pub config: ServerConfig,
    pub store: Arc<Store>,
    pub writer: Writer,
    pub members: Arc<Members>,
    /// Memberships granted by the application's backend (admin API): who may join what beyond
    /// what their token allows.
    pub grants: Arc<Members>,
    pub hub: Arc<Hub>,
    pub limits: Limits,
    pub faults: Faults,
    pub conns: Conns,
}

/// The axum state type.
pub type AppState = Arc<Shared>;
