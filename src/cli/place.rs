//! `binfmtd place`: the placement component (the controller, and the admission webhook
//! that gates pods). Parsing and wiring only; the work is in `crate::place`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::exit::{Exit, Failure};
use crate::kube::Source;
use crate::labels::{Prefix, DEFAULT_PREFIX};

use crate::place::lease::Elector;
use crate::place::registry::{cache, http::Http, Cache, Resolver};
use crate::place::{cert, controller, leader, metrics, webhook};

#[derive(Debug, Clone, clap::Args)]
pub struct PlaceArgs {
    /// Kubeconfig (default: $KUBECONFIG, else the in-cluster service account).
    #[arg(long, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,

    /// This component's own namespace (default: $POD_NAMESPACE); its pods are never gated.
    #[arg(long, value_name = "NS")]
    pub namespace: Option<String>,

    /// Leader-election identity, also named in Events (default: $POD_NAME, else the hostname).
    #[arg(long, value_name = "NAME")]
    pub identity: Option<String>,

    /// HTTPS admission endpoint (path /mutate), on every replica.
    #[arg(long, value_name = "ADDR", default_value = "0.0.0.0:8443")]
    pub webhook_listen: SocketAddr,

    /// Plain HTTP GET /metrics, /healthz and /readyz.
    #[arg(long, value_name = "ADDR", default_value = "0.0.0.0:9464")]
    pub listen: SocketAddr,

    /// The webhook's Service (the serving certificate names <service>.<namespace>.svc).
    #[arg(long, value_name = "NAME", default_value = "binfmtd-placement")]
    pub service: String,

    /// The MutatingWebhookConfiguration whose caBundle is kept current.
    #[arg(long, value_name = "NAME", default_value = "binfmtd-placement")]
    pub webhook_configuration: String,

    /// One more name (or IP address) for the serving certificate, for a webhook reached by
    /// URL rather than through the Service. Repeatable.
    #[arg(long, value_name = "NAME")]
    pub cert_extra_name: Vec<String>,

    /// Secret holding the webhook's serving certificate and key (generated when missing).
    #[arg(long, value_name = "NAME", default_value = "binfmtd-placement-tls")]
    pub tls_secret: String,

    /// coordination.k8s.io Lease for leader election (the controller runs only while leader).
    #[arg(long, value_name = "NAME", default_value = "binfmtd-placement")]
    pub lease: String,

    /// Domain of the node labels `<PREFIX>/<arch>` = native | emulated that `binfmtd run
    /// --node-labels` publishes.
    #[arg(long, value_name = "PREFIX", default_value = DEFAULT_PREFIX)]
    pub label_prefix: Prefix,

    /// Extra CA bundle (PEM) trusted for registries, besides the system roots. Repeatable.
    #[arg(long, value_name = "FILE")]
    pub registry_ca: Vec<PathBuf>,

    /// Per-pod deadline for resolving its images' platforms; past it the gate is removed
    /// with nothing changed and a Warning Event says so.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = super::run::duration)]
    pub registry_timeout: Duration,

    /// Do not serve the admission webhook (run the controller only).
    #[arg(long)]
    pub no_webhook: bool,

    /// Do not run the controller (serve the webhook only).
    #[arg(long)]
    pub no_controller: bool,
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "binfmtd-place".into())
}

fn environment(e: impl std::fmt::Display) -> anyhow::Error {
    Failure::new(Exit::Environment, e.to_string()).into()
}

/// SIGTERM or SIGINT.
async fn terminated() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// Every replica: the serving certificate, the HTTPS /mutate endpoint (counting into
/// /metrics), and a task that renews the certificate.
async fn start_webhook(
    client: kube::Client,
    args: &PlaceArgs,
    ns: &str,
    shared: Arc<metrics::Shared>,
) -> anyhow::Result<()> {
    let (secret, service, mwc, extra) = (
        args.tls_secret.clone(),
        args.service.clone(),
        args.webhook_configuration.clone(),
        args.cert_extra_name.clone(),
    );
    let serving = cert::ensure_for(client.clone(), ns, &secret, &service, &mwc, &extra)
        .await
        .map_err(environment)?;
    let m = &shared.metrics;
    let stats = webhook::Stats {
        reviews: m.webhook_reviews.clone(),
        gated: m.webhook_gated.clone(),
        refused: m.webhook_refused.clone(),
    };
    let handle = webhook::spawn_counting(args.webhook_listen, &serving, ns.to_string(), stats)
        .map_err(environment)?;
    tracing::info!(addr = %handle.addr, "serving the admission webhook (POST /mutate)");
    let ns = ns.to_string();
    tokio::spawn(async move {
        let reload = move |c: &cert::ServingCert| match handle.reload(c) {
            Ok(()) => tracing::info!("serving a renewed certificate"),
            Err(e) => tracing::warn!("serving certificate: {e}; the current one stays in use"),
        };
        cert::keep(
            client,
            &ns,
            &secret,
            &service,
            &mwc,
            &extra,
            serving,
            cert::CHECK_EVERY,
            reload,
        )
        .await
    });
    Ok(())
}

pub fn run(args: PlaceArgs) -> anyhow::Result<Exit> {
    if args.no_webhook && args.no_controller {
        return Err(Failure::new(
            Exit::Usage,
            "--no-webhook and --no-controller together leave nothing to run; drop one",
        )
        .into());
    }
    let Some(namespace) = args.namespace.clone().or_else(|| env("POD_NAMESPACE")) else {
        return Err(Failure::new(
            Exit::Usage,
            "no namespace: pass --namespace NS or set POD_NAMESPACE (in a Deployment from the downward API: \
             fieldRef metadata.namespace); it holds the Lease and the serving certificate's Secret",
        )
        .into());
    };
    let identity = args
        .identity
        .clone()
        .or_else(|| env("POD_NAME"))
        .unwrap_or_else(hostname);
    let fetch = Http::new(&args.registry_ca).map_err(|e| Failure::new(Exit::Usage, e))?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let source = Source::resolve(args.kubeconfig.clone(), std::env::var_os("KUBECONFIG"));
        let config = source.load().await.map_err(environment)?;
        let client = kube::Client::try_from(config).map_err(|e| {
            environment(format!(
                "cannot build the Kubernetes client from {}: {e}",
                source.describe()
            ))
        })?;
        let shared = Arc::new(metrics::Shared::new());
        let bound = crate::agent::http::serve(args.listen, shared.clone()).map_err(|e| {
            environment(format!(
                "--listen {}: cannot listen: {e}. Hint: pick a free address",
                args.listen
            ))
        })?;
        tracing::info!(%bound, "serving /healthz, /readyz and /metrics");
        if !args.no_webhook {
            start_webhook(client.clone(), &args, &namespace, shared.clone()).await?;
        }
        if args.no_controller {
            shared.beat(true);
            terminated().await;
            return Ok(Exit::Ok);
        }
        let elector = Arc::new(Elector::new(
            client.clone(),
            &namespace,
            &args.lease,
            &identity,
        ));
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let campaign = {
            let elector = elector.clone();
            let mut stopped = stopped.clone();
            tokio::spawn(async move {
                elector
                    .run(async move {
                        let _ = stopped.wait_for(|s| *s).await;
                    })
                    .await
            })
        };
        let resolver = Resolver::new(fetch, Cache::new(cache::CAPACITY, cache::TAG_TTL));
        let opts = controller::Options {
            prefix: args.label_prefix.clone(),
            registry_timeout: args.registry_timeout,
            identity,
        };
        let leader: Arc<dyn leader::Leader> = elector;
        tokio::select! {
            _ = controller::run(client, resolver, leader, shared, opts) => {}
            _ = terminated() => tracing::info!("terminating: releasing the Lease"),
        }
        let _ = stop.send(true);
        let _ = campaign.await;
        Ok(Exit::Ok)
    })
}
