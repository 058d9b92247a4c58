//! After every pass: metrics, readiness for /readyz, STATUS= for systemd and the status file.

use std::collections::BTreeMap;

use super::decide::{self, Verdict};
use super::metrics;
use super::pass::Agent;
use super::report::{self, ArchState, Daemon};
use crate::converge;
use crate::prover::ProbeResult;

impl Agent<'_> {
    /// `aarch64 riscv64 working; s390x failing` for STATUS= and the log.
    pub(super) fn summary(&self) -> String {
        let (ok, bad): (Vec<&str>, Vec<&str>) = self
            .arches
            .iter()
            .map(|a| a.qemu)
            .filter(|a| !self.missing.contains(a))
            .partition(|a| self.outcomes.get(a).is_some_and(|o| o.working));
        let mut s = if ok.is_empty() {
            "no arch working".to_string()
        } else {
            format!("working: {}", ok.join(" "))
        };
        if !bad.is_empty() {
            s.push_str(&format!("; not working: {}", bad.join(" ")));
        }
        s
    }

    /// Metrics, readiness, STATUS= and the status file, after every pass.
    pub(super) fn publish(&mut self) {
        let mut not_ready = Vec::new();
        for a in &self.arches {
            let o = self.outcomes.get(a.qemu);
            let ok = o.is_some_and(|o| o.working);
            self.shared
                .metrics
                .working
                .get_or_create(&metrics::arch(a.qemu))
                .set(ok as i64);
            if !ok && !self.missing.contains(a.qemu) {
                let why = o
                    .and_then(|o| o.reason.clone())
                    .unwrap_or_else(|| "not converged yet".into());
                not_ready.push(format!("{}: {why}", a.qemu));
            }
        }
        {
            let mut h = self.shared.state.lock().unwrap_or_else(|e| e.into_inner());
            h.ready = not_ready.is_empty();
            h.not_ready = not_ready;
        }
        self.notify.send(&format!("STATUS={}", self.summary()));
        let mut status = self.report();
        if let Some(l) = &mut self.labels {
            // Under the agent's own prefix in the status file too; handed to the publisher
            // thread (never waits on the API server).
            status.labels = l.desired(&status);
            l.report(&status);
        }
        self.write_status(&status);
        self.last_report = Some(status);
    }

    fn write_status(&mut self, status: &crate::status::Report) {
        self.exec_written = std::time::Instant::now();
        if let Err(e) = report::write(&self.opts.status_file, status, &self.daemon()) {
            tracing::warn!(path = %self.opts.status_file.display(), error = %e, "cannot write the status file");
        }
    }

    /// Between passes: the status file again when the exec monitor's tables changed, at
    /// most every `exec_monitor::WRITE_EVERY`.
    pub(super) fn publish_exec(&mut self) {
        let due = self.exec_written.elapsed() >= super::exec_monitor::WRITE_EVERY;
        if !due || !self.exec.as_ref().is_some_and(|e| e.changed()) {
            return;
        }
        if let Some(status) = self.last_report.take() {
            self.write_status(&status);
            self.last_report = Some(status);
        }
    }

    fn report(&self) -> crate::status::Report {
        let (info, entries) = converge::kernel_view(&self.root);
        let proofs: BTreeMap<&'static str, ProbeResult> = self
            .outcomes
            .iter()
            .filter_map(|(a, o)| Some((*a, o.proof.clone()?)))
            .collect();
        let obs = converge::with_proofs(
            self.prover,
            &self.req.cache_dir,
            self.native.native.clone(),
            info,
            entries,
            proofs,
        );
        crate::status::build(crate::arch::host(), &obs)
    }

    fn daemon(&self) -> Daemon {
        let at = self.started.elapsed();
        let arches = self
            .arches
            .iter()
            .map(|a| {
                let name = a.qemu;
                let h = self.histories.get(name).cloned().unwrap_or_default();
                let mut s = ArchState {
                    repairs: self.repairs.get(name).map_or(0, |r| r.0),
                    last_reason: self.repairs.get(name).map(|r| r.1.as_str()),
                    failures: h.failures(),
                    ..Default::default()
                };
                let working = self.outcomes.get(name).is_some_and(|o| o.working);
                s.state = if self.missing.contains(name) {
                    "missing"
                } else if working {
                    "working"
                } else {
                    "failing"
                };
                match decide::verdict(&h, at, &self.opts.policy) {
                    Verdict::Fight { until, others, .. } => {
                        s.state = "fighting";
                        s.fighting_with = others;
                        s.retry_at = Some(self.wall(until));
                    }
                    Verdict::Backoff { until, .. } if !working => {
                        s.state = "backoff";
                        s.retry_at = Some(self.wall(until));
                    }
                    _ => {}
                }
                (name, s)
            })
            .collect();
        Daemon {
            pid: std::process::id(),
            started: crate::timefmt::rfc3339(self.started_wall),
            last_reconcile: self.last_reconcile.map(crate::timefmt::rfc3339),
            interval_ms: self.opts.interval.as_millis() as u64,
            reproof_interval_s: self.opts.reproof_interval.as_secs(),
            arches,
            exec_monitor: self.exec.as_ref().map(|e| e.report()),
        }
    }

    fn wall(&self, offset: std::time::Duration) -> String {
        crate::timefmt::rfc3339(self.started_wall + offset)
    }
}
