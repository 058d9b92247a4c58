//! The node-label options of `binfmtd run` (and `--label-prefix` of `status`): parsing only.

use std::path::PathBuf;

use crate::exit::{Exit, Failure};
use crate::kube::Source;
use crate::labels::{Prefix, DEFAULT_PREFIX};
use crate::publish::{Options, RESYNC};

#[derive(Debug, Clone, clap::Args)]
pub struct PrefixArg {
    /// Domain the node labels live under: `<PREFIX>/<arch>` = native | emulated. Must be a
    /// DNS subdomain you own (not kubernetes.io or k8s.io).
    #[arg(long, value_name = "PREFIX", default_value = DEFAULT_PREFIX)]
    pub label_prefix: Prefix,
}

#[derive(Debug, Clone, clap::Args)]
pub struct LabelArgs {
    /// Publish `<prefix>/<arch>` = native | emulated on this node's Node object (needs RBAC:
    /// `get` and `patch` on nodes). Writes only when a label changes.
    #[arg(long)]
    pub node_labels: bool,

    #[command(flatten)]
    pub prefix: PrefixArg,

    /// Kubeconfig for --node-labels (default: $KUBECONFIG, else the in-cluster service account).
    #[arg(long, value_name = "FILE", requires = "node_labels")]
    pub kubeconfig: Option<PathBuf>,

    /// The Node object's name (default: $NODE_NAME, else asked of the API server, which
    /// knows kubelet credentials as system:node:<name>). Never guessed from the hostname.
    #[arg(long, value_name = "NAME")]
    pub node_name: Option<String>,

    /// Write the labels as a Node Feature Discovery local-source feature file in DIR
    /// instead (no RBAC needed; nfd-master applies them). Without DIR:
    /// /etc/kubernetes/node-feature-discovery/features.d.
    #[arg(long, value_name = "DIR", num_args = 0..=1, default_missing_value = crate::nfd::DEFAULT_DIR)]
    pub nfd_features_dir: Option<PathBuf>,
}

impl LabelArgs {
    /// The publishing options; both modes at once is a usage error.
    pub fn options(&self) -> Result<Options, Failure> {
        let node = self.node_labels.then(|| {
            let source = Source::resolve(self.kubeconfig.clone(), std::env::var_os("KUBECONFIG"));
            let name = self
                .node_name
                .clone()
                .or_else(|| std::env::var("NODE_NAME").ok())
                .filter(|n| !n.is_empty());
            (source, name)
        });
        let opts = Options {
            prefix: self.prefix.label_prefix.clone(),
            node,
            nfd_dir: self.nfd_features_dir.clone(),
            resync: RESYNC,
        };
        crate::nfd::check_modes(opts.node.is_some(), opts.nfd_dir.as_deref(), &opts.prefix)
            .map_err(|e| Failure::new(Exit::Usage, e.to_string()))?;
        Ok(opts)
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        labels: LabelArgs,
    }

    fn parse(args: &[&str]) -> Result<Options, String> {
        let cli = Cli::try_parse_from(std::iter::once("binfmtd").chain(args.iter().copied()))
            .map_err(|e| e.to_string())?;
        cli.labels.options().map_err(|e| e.message)
    }

    #[test]
    fn label_options() {
        let o = parse(&[]).unwrap();
        assert!(o.node.is_none() && o.nfd_dir.is_none());
        assert_eq!(o.prefix.as_str(), "binfmtd.io");

        let o = parse(&["--node-labels", "--kubeconfig", "/k", "--node-name", "n1"]).unwrap();
        let (source, name) = o.node.unwrap();
        assert_eq!(source, Source::Kubeconfig(vec![PathBuf::from("/k")]));
        assert_eq!(name.as_deref(), Some("n1"));

        let o = parse(&["--nfd-features-dir"]).unwrap();
        assert_eq!(o.nfd_dir.unwrap(), PathBuf::from(crate::nfd::DEFAULT_DIR));
        let o = parse(&[
            "--nfd-features-dir",
            "/x",
            "--label-prefix",
            "emu.example.com",
        ])
        .unwrap();
        assert_eq!(o.nfd_dir.unwrap(), PathBuf::from("/x"));
        assert_eq!(o.prefix.as_str(), "emu.example.com");

        let both = parse(&["--node-labels", "--nfd-features-dir"]).unwrap_err();
        assert!(both.contains("would both publish"), "{both}");
        let bad = parse(&["--label-prefix", "Bad_Prefix"]).unwrap_err();
        assert!(bad.contains("not a DNS subdomain"), "{bad}");
        let reserved = parse(&["--label-prefix", "node.kubernetes.io"]).unwrap_err();
        assert!(reserved.contains("reserved"), "{reserved}");
        let lonely = parse(&["--kubeconfig", "/k"]).unwrap_err();
        assert!(lonely.contains("--node-labels"), "{lonely}");
    }
}
