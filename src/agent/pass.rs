//! The loop's state and its steps: the first pass, a poll tick, a reload, and stopping.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use super::decide::{self, Event, History, Reason, Verdict, View};
use super::http::Shared;
use super::metrics;
use super::notify::Notifier;
use super::{AgentError, Loader, Options};
use crate::arch::Arch;
use crate::converge::{self, Converged, Request};
use crate::install::Outcome;
use crate::kernel::{BinfmtFs, BinfmtMisc, MountOutcome};
use crate::prover::Prover;

pub struct Agent<'a> {
    pub(super) root: PathBuf,
    pub(super) prover: &'a dyn Prover,
    pub(super) opts: &'a Options,
    pub(super) shared: Arc<Shared>,
    pub(super) notify: Notifier,
    pub(super) req: Request,
    pub(super) native: crate::prover::NativeSurvey,
    /// The foreign arches binfmtd keeps working.
    pub(super) arches: Vec<&'static Arch>,
    pub(super) started: Instant,
    pub(super) started_wall: SystemTime,
    pub(super) last_reconcile: Option<SystemTime>,
    pub(super) view: View,
    pub(super) histories: BTreeMap<&'static str, History>,
    /// Arches that need a pass (changed, or failed and waiting for their backoff).
    pub(super) pending: BTreeMap<&'static str, Reason>,
    pub(super) outcomes: BTreeMap<&'static str, Outcome>,
    pub(super) missing: BTreeSet<&'static str>,
    pub(super) repairs: BTreeMap<&'static str, (u64, Reason)>,
    pub(super) holds: BTreeMap<&'static str, Verdict>,
    pub(super) last_reproof: Instant,
    /// Node labels / NFD file from each report (`--node-labels`, `--nfd-features-dir`).
    pub(super) labels: Option<crate::publish::NodeLabels>,
    /// `--exec-monitor`: the watcher thread.
    pub(super) exec: Option<super::exec_monitor::ExecMonitor>,
    /// The last pass's report, rewritten with new exec-monitor tables between passes.
    pub(super) last_report: Option<crate::status::Report>,
    pub(super) exec_written: Instant,
}

impl<'a> Agent<'a> {
    pub fn start(
        root: &Path,
        prover: &'a dyn Prover,
        req: Request,
        opts: &'a Options,
        shared: Arc<Shared>,
    ) -> Result<Agent<'a>, AgentError> {
        let native = crate::prover::survey_native(prover);
        let (arches, skipped) = converge::select(&req, &native)?;
        for n in skipped {
            tracing::info!(arch = n, "native on this host, nothing to register");
        }
        Ok(Agent {
            root: root.to_path_buf(),
            prover,
            opts,
            shared,
            notify: Notifier::from_env(),
            req,
            native,
            arches,
            started: Instant::now(),
            started_wall: SystemTime::now(),
            last_reconcile: None,
            view: View::default(),
            histories: BTreeMap::new(),
            pending: BTreeMap::new(),
            outcomes: BTreeMap::new(),
            missing: BTreeSet::new(),
            repairs: BTreeMap::new(),
            holds: BTreeMap::new(),
            last_reproof: Instant::now(),
            labels: None,
            exec: None,
            last_report: None,
            exec_written: Instant::now(),
        })
    }

    /// Converge every arch, then tell systemd we are ready and which arches work.
    pub fn first_pass(&mut self) -> Result<(), AgentError> {
        let fs = self.mount()?;
        self.pending = self
            .arches
            .iter()
            .map(|a| (a.qemu, Reason::Start))
            .collect();
        self.work(&fs);
        let status = self.summary();
        tracing::info!(%status, "converged");
        self.notify.send(&format!("READY=1\nSTATUS={status}"));
        Ok(())
    }

    /// One poll: notice changes, re-prove when due, work on what may be worked on.
    pub fn tick(&mut self) {
        self.heartbeat();
        self.notify.ping();
        let now = read_view(&self.root);
        let changes = decide::changes(&self.view, &now, &self.arches);
        self.note_changes(changes, &now);
        self.note_unmet(&now);
        self.view = now;
        if self.last_reproof.elapsed() >= self.opts.reproof_interval {
            self.last_reproof = Instant::now();
            self.reprove();
        }
        if !self.needs_work() {
            return;
        }
        match self.mount() {
            Ok(fs) => self.work(&fs),
            Err(e) => tracing::error!(error = %e, "binfmt_misc is unavailable; will retry"),
        }
    }

    /// Re-read the config: a valid one replaces the request (arches dropped from the list
    /// are unregistered if binfmtd owns them); an invalid one is refused with its error.
    pub fn reload(&mut self, load: Loader) {
        let req = match load() {
            Ok(r) => r,
            Err(e) => {
                tracing::error!("config refused, keeping the running state: {e}");
                return;
            }
        };
        let arches = match converge::select(&req, &self.native) {
            Ok((a, _)) => a,
            Err(e) => {
                tracing::error!("config refused, keeping the running state: {e}");
                return;
            }
        };
        let dropped: Vec<&'static Arch> = self
            .arches
            .iter()
            .filter(|a| !arches.contains(a))
            .copied()
            .collect();
        if !dropped.is_empty() {
            match BinfmtFs::open(&self.root)
                .and_then(|fs| crate::install::uninstall(&fs, Some(&dropped)))
            {
                Ok(removed) => tracing::info!(
                    ?removed,
                    "arches dropped from the config: removed binfmtd's entries"
                ),
                Err(e) => tracing::error!(error = %e, "removing entries of dropped arches failed"),
            }
            for a in &dropped {
                self.outcomes.remove(a.qemu);
                self.pending.remove(a.qemu);
                self.histories.remove(a.qemu);
                self.holds.remove(a.qemu);
                self.shared.metrics.working.remove(&metrics::arch(a.qemu));
            }
        }
        self.req = req;
        self.arches = arches;
        self.missing.clear();
        for a in &self.arches {
            self.pending.insert(a.qemu, Reason::Reload);
        }
        match self.mount() {
            Ok(fs) => self.work(&fs),
            Err(e) => tracing::error!(error = %e, "binfmt_misc is unavailable; will retry"),
        }
    }

    /// SIGTERM/SIGINT: leave every entry, unless asked to remove binfmtd's own.
    pub fn stop(&mut self) {
        if self.opts.uninstall_on_exit {
            match BinfmtFs::open(&self.root).and_then(|fs| crate::install::uninstall(&fs, None)) {
                Ok(removed) => {
                    tracing::info!(?removed, "--uninstall-on-exit: removed binfmtd's entries")
                }
                Err(e) => tracing::error!(error = %e, "--uninstall-on-exit failed"),
            }
        }
        self.notify.send("STOPPING=1");
        tracing::info!("exiting");
    }

    /// Record changes someone else made and queue their arches.
    fn note_changes(&mut self, changes: Vec<(&'static Arch, Reason)>, now: &View) {
        let at = self.started.elapsed();
        for (arch, reason) in changes {
            if self.pending.contains_key(arch.qemu) {
                continue;
            }
            let others = now.foreign_names(arch);
            self.history(arch.qemu)
                .push(Event::Changed { at, reason, others });
            self.pending.insert(arch.qemu, reason);
        }
    }

    /// Working arches whose entry is gone or disabled, though no poll saw it change.
    fn note_unmet(&mut self, now: &View) {
        let expected: Vec<(&'static Arch, String)> = self
            .arches
            .iter()
            .filter(|a| !self.pending.contains_key(a.qemu))
            .filter_map(|a| {
                let o = self.outcomes.get(a.qemu).filter(|o| o.working)?;
                Some((*a, o.entry.clone()?))
            })
            .collect();
        let expected: Vec<(&'static Arch, &str)> =
            expected.iter().map(|(a, n)| (*a, n.as_str())).collect();
        let unmet = decide::unmet(&expected, now);
        self.note_changes(unmet, now);
    }

    fn history(&mut self, arch: &'static str) -> &mut History {
        self.histories.entry(arch).or_default()
    }

    fn heartbeat(&self) {
        let mut h = self.shared.state.lock().unwrap_or_else(|e| e.into_inner());
        h.heartbeat = Instant::now();
    }

    /// binfmt_misc, mounted again if it went away (its entries went with it).
    fn mount(&self) -> Result<BinfmtFs, AgentError> {
        let (fs, how) = BinfmtFs::open_or_mount(&self.root)?;
        if how == MountOutcome::MountedNow {
            tracing::warn!(path = %self.root.display(), "binfmt_misc was not mounted: mounted it again");
        }
        Ok(fs)
    }

    /// Is a pending arch free to be worked on, or has a hold (backoff, fight) begun, changed
    /// or ended since the last look? Otherwise a poll costs nothing more (no status write).
    fn needs_work(&self) -> bool {
        let at = self.started.elapsed();
        let verdict = |arch: &str| {
            let h = self.histories.get(arch).cloned().unwrap_or_default();
            decide::verdict(&h, at, &self.opts.policy)
        };
        let pending = self.pending.keys().any(|arch| {
            let v = verdict(arch);
            v == Verdict::Go || self.holds.get(arch) != Some(&v)
        });
        pending || self.holds.iter().any(|(arch, v)| verdict(arch) != *v)
    }

    /// Converge the pending arches that are not held back, then record and report.
    fn work(&mut self, fs: &BinfmtFs) {
        let at = self.started.elapsed();
        let mut due = Vec::new();
        for a in self.arches.clone() {
            let Some(reason) = self.pending.get(a.qemu).copied() else {
                continue;
            };
            let h = self.history(a.qemu).clone();
            let v = decide::verdict(&h, at, &self.opts.policy);
            self.note_hold(a.qemu, &v);
            if v == Verdict::Go {
                due.push((a, reason));
            }
        }
        if !due.is_empty() {
            self.converge(fs, &due);
        }
        let now = read_view(&self.root);
        self.note_unmet(&now);
        self.view = now;
        self.publish();
    }

    fn note_hold(&mut self, arch: &'static str, v: &Verdict) {
        let before = self.holds.get(arch);
        if before == Some(v) || (before.is_none() && *v == Verdict::Go) {
            return;
        }
        match v {
            Verdict::Fight {
                changes, others, ..
            } if !matches!(before, Some(Verdict::Fight { .. })) => {
                tracing::warn!(arch, changes, others = ?others, "another tool keeps changing this arch's entry: holding off until it stops");
                self.shared
                    .metrics
                    .fights
                    .get_or_create(&metrics::arch(arch))
                    .inc();
            }
            Verdict::Go => tracing::info!(arch, "hold ended"),
            _ => {}
        }
        let fighting = matches!(v, Verdict::Fight { .. }) as i64;
        self.shared
            .metrics
            .fighting
            .get_or_create(&metrics::arch(arch))
            .set(fighting);
        if *v == Verdict::Go {
            self.holds.remove(arch);
        } else {
            self.holds.insert(arch, v.clone());
        }
    }

    fn converge(&mut self, fs: &BinfmtFs, due: &[(&'static Arch, Reason)]) {
        let mut req = self.req.clone();
        req.arches = due.iter().map(|(a, _)| *a).collect();
        req.skip_native = true;
        let done =
            match converge::converge(fs, self.prover, &req, &self.native, self.opts.lock_wait) {
                Ok(d) => d,
                Err(e) => {
                    tracing::error!(error = %e, "converge pass failed; will retry");
                    return;
                }
            };
        self.last_reconcile = Some(SystemTime::now());
        self.record(due, done);
    }

    fn record(&mut self, due: &[(&'static Arch, Reason)], done: Converged) {
        let at = self.started.elapsed();
        let shared = self.shared.clone();
        let m = &shared.metrics;
        m.last_reconcile.set(unix(SystemTime::now()));
        for n in done.missing {
            tracing::warn!(
                arch = n,
                "no source has an interpreter for this arch: skipped"
            );
            self.missing.insert(n);
            self.pending.remove(n);
        }
        for o in done.outcomes {
            let Some((arch, reason)) = due.iter().find(|(a, _)| a.qemu == o.arch) else {
                continue;
            };
            let name = arch.qemu;
            if done.undecided_skipped && o.action == crate::install::UNDECIDED {
                // Under `all`, a compat format that may be native is left alone, not retried.
                tracing::warn!(arch = name, "{}", o.reason.as_deref().unwrap_or("skipped"));
                self.missing.insert(name);
                self.pending.remove(name);
                continue;
            }
            if let Some(p) = &o.proof {
                m.probe_seconds.observe(p.millis as f64 / 1000.0);
            }
            let label = metrics::arch_reason(name, reason.as_str());
            m.repairs.get_or_create(&label).inc();
            let count = self.repairs.get(name).map_or(0, |r| r.0) + 1;
            self.repairs.insert(name, (count, *reason));
            if o.working {
                tracing::info!(arch = name, reason = reason.as_str(), action = %o.action, "converged");
                self.pending.remove(name);
            } else {
                let why = o.reason.clone().unwrap_or_default();
                tracing::error!(arch = name, reason = reason.as_str(), "not working: {why}");
                m.failures.get_or_create(&metrics::arch(name)).inc();
                if o.interpreter == "-" {
                    m.fetch_failures.get_or_create(&metrics::arch(name)).inc();
                }
                self.pending.insert(name, Reason::Retry);
            }
            self.history(name).push(Event::Attempt {
                at,
                working: o.working,
            });
            self.outcomes.insert(name, o);
        }
    }

    /// Prove every arch that worked; one that stopped working is converged again.
    fn reprove(&mut self) {
        let working: Vec<&'static Arch> = self
            .arches
            .iter()
            .filter(|a| self.outcomes.get(a.qemu).is_some_and(|o| o.working))
            .filter(|a| self.prover.can_probe(a))
            .copied()
            .collect();
        let proofs = crate::par::map(&working, |a| self.prover.prove(a));
        for (a, p) in working.into_iter().zip(proofs) {
            self.shared
                .metrics
                .probe_seconds
                .observe(p.millis as f64 / 1000.0);
            if !p.ok {
                tracing::warn!(arch = a.qemu, detail = %p.detail, "periodic re-proof failed");
                self.pending.insert(a.qemu, Reason::Reproof);
            }
            if let Some(o) = self.outcomes.get_mut(a.qemu) {
                o.proof = Some(p);
            }
        }
    }
}

pub(super) fn unix(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// One cheap poll: is binfmt_misc there, and what entries does it hold? The common case is
/// one directory read and one read per entry; only an empty listing needs the statfs that
/// tells a flushed instance from an unmounted one (an unmounted path lists nothing).
fn read_view(root: &Path) -> View {
    if let Ok(entries) = BinfmtFs::unchecked(root).entries() {
        if !entries.is_empty() {
            return View {
                mounted: true,
                entries,
            };
        }
    }
    match BinfmtFs::open(root).and_then(|fs| fs.entries()) {
        Ok(entries) => View {
            mounted: true,
            entries,
        },
        Err(_) => View::default(),
    }
}
