//! Which address Gloo binds to. Every rank publishes it in the store and the others connect to it,
//! so it must be reachable from the other hosts. PyTorch binds to GLOO_SOCKET_IFNAME's interfaces
//! when set, else to whatever this host's name resolves to, and that is loopback on a Debian host
//! whose /etc/hosts maps the name to 127.0.1.1: a rendezvous across hosts then waits until its
//! timeout. bertfit does the same except in that case, where it binds the address the kernel would
//! send from to reach MASTER_ADDR (the interface that reaches the master reaches its network).
use std::net::{IpAddr, SocketAddr, ToSocketAddrs, UdpSocket};

use crate::error::{Error, Result};
use crate::torch_ext::c10d::GlooDevice;

/// The variable that names Gloo's interfaces, as PyTorch reads it (comma-separated).
pub const IFNAME_ENV: &str = "GLOO_SOCKET_IFNAME";

/// A device and why it was chosen (the rank's log line at join).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Choice {
    pub device: GlooDevice,
    pub why: String,
}

impl Choice {
    /// One line for the log: what Gloo binds and why.
    pub fn describe(&self) -> String {
        match &self.device {
            GlooDevice::Interfaces(names) => format!("Gloo binds to interface {names} ({})", self.why),
            GlooDevice::Host(host) => format!("Gloo binds to {host} ({})", self.why),
        }
    }
}

/// The device for a rank whose rendezvous is at `master_addr:port`.
pub fn choose(master_addr: &str, port: u16) -> Result<Choice> {
    if let Some(names) = std::env::var(IFNAME_ENV).ok().filter(|v| !v.trim().is_empty()) {
        let why = format!("{IFNAME_ENV} is set");
        return Ok(Choice { device: GlooDevice::Interfaces(names.trim().to_string()), why });
    }
    let master: Vec<IpAddr> = resolve(master_addr, port);
    if let Some(lo) = master.iter().find(|ip| ip.is_loopback()) {
        // Every rank reaches the master on this host's loopback: a single-host run.
        let host = if lo.is_ipv4() { "127.0.0.1" } else { "::1" };
        let why = format!("MASTER_ADDR {master_addr} is this host's loopback: all ranks on this host");
        return Ok(Choice { device: GlooDevice::Host(host.into()), why });
    }
    let name = hostname()?;
    let own = resolve(&name, 0);
    if let Some(ip) = own.iter().find(|ip| !ip.is_loopback() && bindable(**ip)) {
        let why = format!("an address the hostname {name} resolves to; {IFNAME_ENV} overrides");
        return Ok(Choice { device: GlooDevice::Host(ip.to_string()), why });
    }
    let seen = if own.is_empty() {
        "does not resolve".to_string()
    } else {
        format!("resolves only to {}", own.iter().map(|ip| ip.to_string()).collect::<Vec<_>>().join(", "))
    };
    match master.iter().find_map(|ip| route_source(*ip, port)) {
        Some(ip) if !ip.is_loopback() => Ok(Choice {
            device: GlooDevice::Host(ip.to_string()),
            why: format!(
                "the hostname {name} {seen}, so the address this host reaches MASTER_ADDR \
                 {master_addr} from; {IFNAME_ENV}=<interface> chooses another"
            ),
        }),
        _ => Err(Error::Runtime(format!(
            "cannot choose a network address for Gloo: the hostname {name} {seen} (other hosts \
             cannot reach that) and this host has no route to MASTER_ADDR {master_addr}; set \
             {IFNAME_ENV} to the interface that reaches the other hosts"
        ))),
    }
}

/// The addresses `host` resolves to (none when it does not).
fn resolve(host: &str, port: u16) -> Vec<IpAddr> {
    match (host, port).to_socket_addrs() {
        Ok(addrs) => addrs.map(|a| a.ip()).collect(),
        Err(_) => Vec::new(),
    }
}

fn hostname() -> Result<String> {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer's own length; gethostname NUL-terminates within it (or fails).
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr() as *mut libc::c_char, buf.len()) };
    if rc != 0 {
        return Err(Error::Runtime(format!(
            "cannot read this host's name ({}); set {IFNAME_ENV} to the interface Gloo should use",
            std::io::Error::last_os_error()
        )));
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    Ok(String::from_utf8_lossy(&buf[..end]).into_owned())
}

/// Whether `ip` is an address of this host (PyTorch's test: a socket binds to it).
fn bindable(ip: IpAddr) -> bool {
    UdpSocket::bind(SocketAddr::new(ip, 0)).is_ok()
}

/// The local address the kernel would send from to reach `ip`: connecting a UDP socket only
/// looks the route up, it sends nothing.
fn route_source(ip: IpAddr, port: u16) -> Option<IpAddr> {
    let any: IpAddr = if ip.is_ipv4() { [0u8; 4].into() } else { [0u16; 8].into() };
    let socket = UdpSocket::bind(SocketAddr::new(any, 0)).ok()?;
    socket.connect(SocketAddr::new(ip, port.max(1))).ok()?;
    socket.local_addr().ok().map(|a| a.ip())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_loopback_master_binds_loopback() {
        // GLOO_SOCKET_IFNAME is not set in the unit tests' environment unless a user set it.
        if std::env::var_os(IFNAME_ENV).is_some() {
            return;
        }
        let c = choose("127.0.0.1", 29500).unwrap();
        assert_eq!(c.device, GlooDevice::Host("127.0.0.1".into()));
        assert!(c.describe().contains("Gloo binds to 127.0.0.1"), "{}", c.describe());
    }

    #[test]
    fn the_route_to_a_loopback_address_starts_at_loopback() {
        assert_eq!(route_source([127, 0, 0, 1].into(), 1), Some([127, 0, 0, 1].into()));
    }
}
