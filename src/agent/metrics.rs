//! The agent's Prometheus metrics (prometheus-client), named by its conventions:
//!
//! | metric                                       | type      | labels          |
//! |----------------------------------------------|-----------|-----------------|
//! | binfmtd_arch_working                         | gauge 0/1 | arch            |
//! | binfmtd_arch_fighting                        | gauge 0/1 | arch            |
//! | binfmtd_repairs_total                        | counter   | arch, reason    |
//! | binfmtd_failures_total                       | counter   | arch            |
//! | binfmtd_fetch_failures_total                 | counter   | arch            |
//! | binfmtd_fights_total                         | counter   | arch            |
//! | binfmtd_probe_duration_seconds               | histogram |                 |
//! | binfmtd_last_reconcile_timestamp_seconds     | gauge     |                 |
//! | binfmtd_emulated_execs_total                 | counter   | arch            |
//! | binfmtd_exec_format_errors_total             | counter   |                 |
//!
//! The exec counters (`run --exec-monitor`, `monitor --listen`) carry no per-pod labels: the
//! arch label has at most one value per arch-table row (plus `unknown`); per-container
//! detail is in the status file, bounded.

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

type Labels = Vec<(&'static str, String)>;

pub struct Metrics {
    registry: Registry,
    pub working: Family<Labels, Gauge>,
    pub fighting: Family<Labels, Gauge>,
    pub repairs: Family<Labels, Counter>,
    pub failures: Family<Labels, Counter>,
    pub fetch_failures: Family<Labels, Counter>,
    pub fights: Family<Labels, Counter>,
    pub probe_seconds: Histogram,
    pub last_reconcile: Gauge<f64, AtomicU64>,
    pub emulated_execs: Family<Labels, Counter>,
    pub exec_format_errors: Counter,
}

pub fn arch(a: &str) -> Labels {
    vec![("arch", a.to_string())]
}

pub fn arch_reason(a: &str, reason: &str) -> Labels {
    vec![("arch", a.to_string()), ("reason", reason.to_string())]
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("binfmtd");
        let m = Metrics {
            registry: Registry::default(),
            working: Family::default(),
            fighting: Family::default(),
            repairs: Family::default(),
            failures: Family::default(),
            fetch_failures: Family::default(),
            fights: Family::default(),
            probe_seconds: Histogram::new([
                0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
            ]),
            last_reconcile: Gauge::default(),
            emulated_execs: Family::default(),
            exec_format_errors: Counter::default(),
        };
        registry.register("arch_working", "1 when the arch runs (native, emulated and proven, or served by a working foreign entry)", m.working.clone());
        registry.register(
            "arch_fighting",
            "1 while another tool keeps changing the arch's entry and binfmtd holds off",
            m.fighting.clone(),
        );
        registry.register(
            "repairs",
            "Converge passes for an arch that changed, by what changed",
            m.repairs.clone(),
        );
        registry.register(
            "failures",
            "Converge passes that left an arch not working",
            m.failures.clone(),
        );
        registry.register(
            "fetch_failures",
            "Interpreters that could not be provisioned (download, verification)",
            m.fetch_failures.clone(),
        );
        registry.register(
            "fights",
            "Times another tool was found fighting over an arch's entry",
            m.fights.clone(),
        );
        registry.register_with_unit(
            "probe_duration",
            "Duration of probe programs run by the agent",
            Unit::Seconds,
            m.probe_seconds.clone(),
        );
        registry.register(
            "last_reconcile_timestamp_seconds",
            "Unix time of the last converge pass",
            m.last_reconcile.clone(),
        );
        registry.register(
            "emulated_execs",
            "Successful execs on the node whose program ran through a binfmt_misc interpreter, by the program's arch",
            m.emulated_execs.clone(),
        );
        registry.register(
            "exec_format_errors",
            "Execs on the node that failed with ENOEXEC (exec format error)",
            m.exec_format_errors.clone(),
        );
        Metrics { registry, ..m }
    }

    /// Count one exec-monitor event.
    pub fn count_exec(&self, e: &crate::monitor::Event) {
        match e.kind {
            crate::monitor::Kind::Emulated => self
                .emulated_execs
                .get_or_create(&arch(e.arch.unwrap_or("unknown")))
                .inc(),
            crate::monitor::Kind::ExecFormatError => self.exec_format_errors.inc(),
        };
    }

    pub fn text(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}
