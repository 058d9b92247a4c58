//! The controller's Prometheus metrics, served on `--listen` with /healthz and /readyz:
//!
//! | metric                                          | type      | labels  |
//! |-------------------------------------------------|-----------|---------|
//! | binfmtd_placement_decisions_total               | counter   | outcome |
//! | binfmtd_placement_patch_failures_total          | counter   |         |
//! | binfmtd_placement_gate_duration_seconds         | histogram |         |
//! | binfmtd_placement_cached_references             | gauge     |         |
//! | binfmtd_placement_leader                        | gauge 0/1 |         |
//! | binfmtd_placement_webhook_reviews_total         | counter   |         |
//! | binfmtd_placement_webhook_gated_total           | counter   |         |
//! | binfmtd_placement_webhook_refused_total         | counter   |         |
//!
//! `outcome` is `crate::placement::decide::Outcome::label` (covered, constrained, placed,
//! no_common_arch, no_capable_node, unresolved, bad_reference, no_nodes).

use std::sync::Mutex;
use std::time::Instant;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

use crate::agent::http::{Health, Report};

type Labels = Vec<(&'static str, String)>;

pub struct Metrics {
    registry: Registry,
    pub decisions: Family<Labels, Counter>,
    pub patch_failures: Counter,
    pub gate_seconds: Histogram,
    pub cached: Gauge,
    pub leader: Gauge,
    pub webhook_reviews: Counter,
    pub webhook_gated: Counter,
    pub webhook_refused: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("binfmtd_placement");
        let m = Metrics {
            registry: Registry::default(),
            decisions: Family::default(),
            patch_failures: Counter::default(),
            gate_seconds: Histogram::new([0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0]),
            cached: Gauge::default(),
            leader: Gauge::default(),
            webhook_reviews: Counter::default(),
            webhook_gated: Counter::default(),
            webhook_refused: Counter::default(),
        };
        registry.register("decisions", "Gated pods decided, by outcome", m.decisions.clone());
        registry.register(
            "patch_failures",
            "Patches of a gated pod the API server refused (the pod is retried)",
            m.patch_failures.clone(),
        );
        registry.register_with_unit(
            "gate_duration",
            "From a gated pod seen to its gate removed",
            Unit::Seconds,
            m.gate_seconds.clone(),
        );
        registry.register(
            "cached_references",
            "Image references whose platforms are cached (by tag and by digest)",
            m.cached.clone(),
        );
        registry.register("leader", "1 while this replica is the leader and decides", m.leader.clone());
        registry.register("webhook_reviews", "Admission reviews answered", m.webhook_reviews.clone());
        registry.register("webhook_gated", "Admission reviews that added the gate", m.webhook_gated.clone());
        registry.register(
            "webhook_refused",
            "Webhook requests refused (not an AdmissionReview, too large, wrong path or method)",
            m.webhook_refused.clone(),
        );
        Metrics { registry, ..m }
    }

    pub fn decided(&self, outcome: &str) {
        self.decisions
            .get_or_create(&vec![("outcome", outcome.to_string())])
            .inc();
    }

    pub fn text(&self) -> String {
        let mut out = String::new();
        let _ = encode(&mut out, &self.registry);
        out
    }
}

/// What `--listen` answers from.
pub struct Shared {
    pub metrics: Metrics,
    pub health: Mutex<Health>,
}

impl Shared {
    pub fn new() -> Shared {
        Shared {
            metrics: Metrics::new(),
            health: Mutex::new(Health {
                heartbeat: Instant::now(),
                ready: false,
                not_ready: vec!["starting: the first list of nodes and pods is not in".into()],
            }),
        }
    }

    /// The loop came round; `ready` once the watches have listed once.
    pub fn beat(&self, ready: bool) {
        let mut h = self.health.lock().unwrap_or_else(|e| e.into_inner());
        h.heartbeat = Instant::now();
        if ready {
            h.ready = true;
            h.not_ready.clear();
        }
    }
}

impl Default for Shared {
    fn default() -> Self {
        Self::new()
    }
}

impl Report for Shared {
    fn health(&self) -> Health {
        self.health.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
    fn metrics_text(&self) -> String {
        self.metrics.text()
    }
}
