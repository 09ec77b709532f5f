//! `wasi:sockets/ip-name-lookup`, limited to the names `[net] tcp` lists.
//!
//! A guest may resolve only a name that a TCP entry names; every lookup is
//! recorded, refused ones with the rule. The addresses a permitted lookup
//! returns are remembered with their name, so that the socket check can
//! allow a connection to them under that name's entry (and still refuses
//! a non-public address the entry does not name literally). Defends against
//! DNS as an exfiltration channel and against reaching hosts by names the
//! profile never mentions.

use super::NetGrants;
use super::policy;
use crate::evidence::{Decision, EventDraft, EvidenceSink};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};
use wasmtime::component::{HasData, Resource};
use wasmtime_wasi::p2::bindings::sockets::ip_name_lookup::{
    Host, HostResolveAddressStream, ResolveAddressStream,
};
use wasmtime_wasi::p2::bindings::sockets::network::{ErrorCode, IpAddress, Network};
use wasmtime_wasi::p2::{DynPollable, SocketError};
use wasmtime_wasi::sockets::WasiSocketsCtxView;

/// Addresses that permitted lookups returned, with the name looked up.
#[derive(Debug, Clone, Default)]
pub struct Resolved {
    names: Arc<Mutex<HashMap<IpAddr, String>>>,
}

impl Resolved {
    /// The name a permitted lookup resolved to `ip`, if any.
    pub fn name_of(&self, ip: IpAddr) -> Option<String> {
        self.lock().get(&ip).cloned()
    }

    fn remember(&self, ip: IpAddr, name: &str) {
        self.lock().insert(ip, name.to_owned());
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, String>> {
        // Entries are inserted whole; a panic elsewhere cannot corrupt them.
        self.names.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Per-run lookup state: the name of each open lookup stream.
#[derive(Debug, Default)]
pub struct LookupState {
    streams: HashMap<u32, String>,
}

/// Marker for linking the limited lookup host.
pub struct LimitedLookup;

impl HasData for LimitedLookup {
    type Data<'a> = LookupView<'a>;
}

/// What a lookup host call sees.
pub struct LookupView<'a> {
    /// wasmtime-wasi's sockets view that performs the lookup.
    pub wasi: WasiSocketsCtxView<'a>,
    /// The run's network grants.
    pub grants: &'a NetGrants,
    /// Addresses permitted lookups returned.
    pub resolved: &'a Resolved,
    /// Open lookup streams.
    pub state: &'a mut LookupState,
    /// The run's evidence log.
    pub evidence: &'a Arc<dyn EvidenceSink>,
}

impl wasmtime_wasi::p2::bindings::sockets::network::Host for LookupView<'_> {
    fn convert_error_code(&mut self, error: SocketError) -> wasmtime::Result<ErrorCode> {
        wasmtime_wasi::p2::bindings::sockets::network::Host::convert_error_code(
            &mut self.wasi,
            error,
        )
    }

    fn network_error_code(
        &mut self,
        err: Resource<wasmtime::Error>,
    ) -> wasmtime::Result<Option<ErrorCode>> {
        wasmtime_wasi::p2::bindings::sockets::network::Host::network_error_code(&mut self.wasi, err)
    }
}

impl wasmtime_wasi::p2::bindings::sockets::network::HostNetwork for LookupView<'_> {
    fn drop(&mut self, network: Resource<Network>) -> wasmtime::Result<()> {
        wasmtime_wasi::p2::bindings::sockets::network::HostNetwork::drop(&mut self.wasi, network)
    }
}

impl Host for LookupView<'_> {
    fn resolve_addresses(
        &mut self,
        network: Resource<Network>,
        name: String,
    ) -> Result<Resource<ResolveAddressStream>, SocketError> {
        let verdict = policy::decide_tcp_lookup(&self.grants.tcp, &name);
        // Observe mode looks the name up; the connection to what it
        // returns is decided (and private addresses refused) on its own.
        let observed = self.grants.observe && super::observe::lookup_may_proceed(&verdict);
        let mut event = EventDraft::new("net.connect")
            .decision(if verdict.allowed {
                Decision::Allowed
            } else if observed {
                Decision::Observed
            } else {
                Decision::Denied
            })
            .target(name.clone())
            .field("use", "NameLookup")
            .field("rule", verdict.rule.clone());
        if let Some(reason) = &verdict.reason {
            event = event.field("reason", reason.clone());
        }
        self.evidence.append(event).map_err(SocketError::trap)?;
        if !verdict.allowed && !observed {
            return Err(ErrorCode::PermanentResolverFailure.into());
        }
        let stream = Host::resolve_addresses(&mut self.wasi, network, name.clone())?;
        self.state.streams.insert(stream.rep(), name);
        Ok(stream)
    }
}

impl HostResolveAddressStream for LookupView<'_> {
    fn resolve_next_address(
        &mut self,
        stream: Resource<ResolveAddressStream>,
    ) -> Result<Option<IpAddress>, SocketError> {
        let name = self.state.streams.get(&stream.rep()).cloned();
        let next = HostResolveAddressStream::resolve_next_address(&mut self.wasi, stream)?;
        if let (Some(address), Some(name)) = (&next, name) {
            self.resolved.remember(ip_of(address), &name);
        }
        Ok(next)
    }

    fn subscribe(
        &mut self,
        stream: Resource<ResolveAddressStream>,
    ) -> wasmtime::Result<Resource<DynPollable>> {
        HostResolveAddressStream::subscribe(&mut self.wasi, stream)
    }

    fn drop(&mut self, stream: Resource<ResolveAddressStream>) -> wasmtime::Result<()> {
        self.state.streams.remove(&stream.rep());
        HostResolveAddressStream::drop(&mut self.wasi, stream)
    }
}

fn ip_of(address: &IpAddress) -> IpAddr {
    match *address {
        IpAddress::Ipv4((a, b, c, d)) => IpAddr::from([a, b, c, d]),
        IpAddress::Ipv6((a, b, c, d, e, f, g, h)) => IpAddr::from([a, b, c, d, e, f, g, h]),
    }
}
