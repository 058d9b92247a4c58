//! The agent's settings in the config file (top level, kebab-case): which arches and
//! which flags, so they can change without a restart. Command-line values win. Pure.

use super::{FieldError, RawConfig};

/// What the file says; `None` where it says nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AgentSettings {
    /// The arch list as `--arch` takes it (`arm64,riscv64` or `all`), already checked.
    pub arches: Option<String>,
    pub skip_native: Option<bool>,
    pub credentials: Option<bool>,
    pub open_binary: Option<bool>,
    pub replace_foreign: Option<bool>,
}

/// Check the agent keys, collecting every problem.
pub fn settings(raw: &RawConfig) -> Result<AgentSettings, Vec<FieldError>> {
    let mut errors = Vec::new();
    let arches = raw.arches.as_ref().map(|list| list.join(","));
    if let Some(list) = &raw.arches {
        if list.is_empty() {
            errors.push(FieldError {
                field: "arches".into(),
                message: "is empty; name arches like [\"arm64\", \"riscv64\"] or [\"all\"], or drop the key".into(),
            });
        }
        for name in list {
            if let Err(e) = crate::arch::lookup_list(name) {
                errors.push(FieldError {
                    field: "arches".into(),
                    message: e.to_string(),
                });
            }
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(AgentSettings {
        arches,
        skip_native: raw.skip_native,
        credentials: raw.credentials,
        open_binary: raw.open_binary,
        replace_foreign: raw.replace_foreign,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<AgentSettings, String> {
        crate::config::parse(text, std::path::Path::new("c.toml"))
            .map(|c| c.agent)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn reads_every_agent_key() {
        let s = parse(
            "arches = [\"arm64\", \"linux/riscv64\"]\nskip-native = true\ncredentials = false\n\
             open-binary = false\nreplace-foreign = true\n",
        )
        .unwrap();
        assert_eq!(
            s,
            AgentSettings {
                arches: Some("arm64,linux/riscv64".into()),
                skip_native: Some(true),
                credentials: Some(false),
                open_binary: Some(false),
                replace_foreign: Some(true),
            }
        );
        assert_eq!(parse("").unwrap(), AgentSettings::default());
    }

    #[test]
    fn refuses_bad_arch_lists_naming_the_field() {
        let e = parse("arches = [\"arm64\", \"vax\"]").unwrap_err();
        assert!(e.contains("arches: ") && e.contains("vax"), "{e}");
        let e = parse("arches = []").unwrap_err();
        assert!(e.contains("arches: is empty"), "{e}");
        let e = parse("skip-native = \"yes\"").unwrap_err();
        assert!(e.contains("skip-native") || e.contains("boolean"), "{e}");
    }
}
