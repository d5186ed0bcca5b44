//! What one compile hands the next: compiled entries and per-namespace allowlists, reused while
//! their inputs are the very same parsed entries.
//!
//! The parse cache (`config::load::ParseCache`) already gives an unchanged file's entries back as
//! the same `Arc`s, so identity is the whole test: an entry that is the same `Arc` as last time
//! is not compiled again, and a namespace that sees exactly the same entries as last time keeps
//! its allowlist. A reload after one tenant's file changed then costs that tenant's allowlist,
//! not every tenant's — CPU that would otherwise be taken from connections sharing the core.

use std::collections::HashMap;
use std::sync::Arc;

use ipnet::IpNet;

use crate::config::SourcedEntry;
use crate::decide::{Allowlist, Rule, Visibility};
use crate::names::{HostPattern, Namespace};
use crate::pace::Pacer;

/// A compiled entry: what it takes to place it in the allowlists of those who see it.
struct CompiledEntry {
    /// The parsed entry it came from; holding it keeps the identity the cache is keyed by.
    source: Arc<SourcedEntry>,
    rule: Arc<Rule>,
    visibility: Visibility,
    hosts: Vec<HostPattern>,
    addresses: Vec<IpNet>,
}

/// The cache key of a parsed entry: its address, unique while the entry is alive.
fn identity(source: &Arc<SourcedEntry>) -> usize {
    Arc::as_ptr(source) as usize
}

/// Whose allowlist: one namespace's, or the one of entries exported to `*`.
type Viewer = Option<Namespace>;

/// An allowlist and the entries it was built from, in order.
struct Built {
    from: Vec<Arc<CompiledEntry>>,
    allowlist: Arc<Allowlist>,
}

/// Kept between compiles (by the reloader); an empty cache compiles everything.
#[derive(Default)]
pub struct CompileCache {
    /// The `default_export_to` the entries were compiled under; visibility depends on it.
    default_export_to: Vec<String>,
    /// Compiled entries by the address of their source, which each value keeps alive.
    entries: HashMap<usize, Arc<CompiledEntry>>,
    allowlists: HashMap<Viewer, Built>,
}

impl CompileCache {
    /// Starts a compile under `default_export_to`; the cache changes only when it finishes.
    pub fn start<'c>(&'c mut self, default_export_to: &[String]) -> Compiling<'c> {
        let reusable = self.default_export_to == default_export_to;
        Compiling {
            cache: self,
            reusable,
            default_export_to: default_export_to.to_vec(),
            entries: HashMap::new(),
            visible: HashMap::new(),
            everyone: Vec::new(),
        }
    }
}

/// One compile in progress.
pub struct Compiling<'c> {
    cache: &'c mut CompileCache,
    reusable: bool,
    default_export_to: Vec<String>,
    entries: HashMap<usize, Arc<CompiledEntry>>,
    visible: HashMap<Namespace, Vec<Arc<CompiledEntry>>>,
    everyone: Vec<Arc<CompiledEntry>>,
}

/// What compiling one entry yields: the rule, who sees it, and its hosts and addresses.
pub type Compiled = (Rule, Visibility, Vec<HostPattern>, Vec<IpNet>);

impl Compiling<'_> {
    /// Adds `source`, compiled by `compile` unless the previous compile already did.
    pub fn add(
        &mut self,
        source: &Arc<SourcedEntry>,
        compile: impl FnOnce(&SourcedEntry) -> Result<Compiled, String>,
    ) -> Result<(), String> {
        let kept = self
            .reusable
            .then(|| self.cache.entries.get(&identity(source)))
            .flatten();
        let entry = match kept {
            Some(entry) => entry.clone(),
            None => {
                let (rule, visibility, hosts, addresses) = compile(source)?;
                Arc::new(CompiledEntry {
                    source: source.clone(),
                    rule: Arc::new(rule),
                    visibility,
                    hosts,
                    addresses,
                })
            }
        };
        match &entry.visibility {
            Visibility::Everyone => self.everyone.push(entry.clone()),
            Visibility::Namespaces(namespaces) => {
                for namespace in namespaces {
                    // Looked up before inserting: most entries go to a namespace already seen,
                    // and the name is copied only for a new one.
                    match self.visible.get_mut(namespace) {
                        Some(seen) => seen.push(entry.clone()),
                        None => {
                            self.visible.insert(namespace.clone(), vec![entry.clone()]);
                        }
                    }
                }
            }
        }
        self.entries.insert(identity(&entry.source), entry);
        Ok(())
    }

    /// The allowlist of each namespace and of `*`, built only where the entries they see
    /// changed; the cache now holds this compile's results.
    pub fn finish(self) -> (Vec<(Namespace, Arc<Allowlist>)>, Arc<Allowlist>) {
        let viewers = self.visible.into_iter().map(|(ns, from)| (Some(ns), from));
        let everyone = (!self.everyone.is_empty()).then_some((None, self.everyone));
        let mut allowlists = HashMap::new();
        let mut pacer = Pacer::default();
        for (viewer, from) in viewers.chain(everyone) {
            pacer.step();
            let kept = self
                .cache
                .allowlists
                .get(&viewer)
                .filter(|built| same_entries(&built.from, &from))
                .map(|built| built.allowlist.clone());
            let allowlist = kept.unwrap_or_else(|| Arc::new(build(&from, &mut pacer)));
            allowlists.insert(viewer, Built { from, allowlist });
        }
        let everyone = allowlists
            .get(&None)
            .map(|built| built.allowlist.clone())
            .unwrap_or_default();
        let tenants = allowlists
            .iter()
            .filter_map(|(viewer, built)| Some((viewer.clone()?, built.allowlist.clone())))
            .collect();
        *self.cache = CompileCache {
            default_export_to: self.default_export_to,
            entries: self.entries,
            allowlists,
        };
        (tenants, everyone)
    }
}

fn same_entries(a: &[Arc<CompiledEntry>], b: &[Arc<CompiledEntry>]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(a, b)| Arc::ptr_eq(a, b))
}

fn build(entries: &[Arc<CompiledEntry>], pacer: &mut Pacer) -> Allowlist {
    let mut allowlist = Allowlist::default();
    for entry in entries {
        pacer.step();
        allowlist.add(entry.rule.clone(), &entry.hosts, &entry.addresses);
    }
    allowlist
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::load::{load_cached, ParseCache};
    use crate::decide::Verdict;
    use crate::names::{Host, Target};
    use crate::snapshot::{compile_at, compile_reusing, Snapshot};
    use std::time::{Duration, SystemTime};

    /// A config directory reloaded the way the reloader does it: both caches carried over.
    struct Reloads {
        dir: tempfile::TempDir,
        parsed: ParseCache,
        compiled: CompileCache,
        generation: u64,
    }

    impl Reloads {
        fn new(default_export_to: &str) -> Self {
            let dir = tempfile::tempdir().expect("tempdir");
            for tenant in ["a", "b", "c"] {
                std::fs::create_dir_all(dir.path().join("serviceentries").join(tenant))
                    .expect("mkdir");
            }
            let reloads = Self {
                dir,
                parsed: ParseCache::default(),
                compiled: CompileCache::default(),
                generation: 0,
            };
            reloads.set_default_export_to(default_export_to);
            reloads
        }

        fn set_default_export_to(&self, export: &str) {
            let gateway = format!(
                "listeners:\n  connect: {{address: \"127.0.0.1:0\"}}\nserviceentries:\n  default_export_to: [\"{export}\"]\n"
            );
            self.write(Path::new("gateway.yaml"), &gateway);
        }

        /// Writes `serviceentries/NAMESPACE/NAME.yaml` allowing `host` on 443, with `exportTo`
        /// set to the YAML list items `export_to` (left out when empty).
        fn entry(&self, namespace: &str, name: &str, host: &str, export_to: &str) {
            let export_to = if export_to.is_empty() {
                String::new()
            } else {
                format!("  exportTo: [{export_to}]\n")
            };
            let text = format!(
                "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {{name: {name}}}\nspec:\n  hosts: [\"{host}\"]\n{export_to}  ports:\n    - {{number: 443, name: https, protocol: HTTPS}}\n  resolution: DNS\n"
            );
            let path = Path::new("serviceentries")
                .join(namespace)
                .join(format!("{name}.yaml"));
            self.write(&path, &text);
        }

        fn write(&self, relative: &Path, text: &str) {
            std::fs::write(self.dir.path().join(relative), text).expect("write config file");
        }

        fn reload(&mut self) -> Result<Snapshot, String> {
            self.generation += 1;
            let loaded = load_cached(self.dir.path(), &mut self.parsed)
                .map_err(|problems| format!("{problems:?}"))?;
            compile_reusing(&loaded, self.generation, &mut self.compiled)
                .map_err(|problems| format!("{problems:?}"))
        }

        fn kept(&self, namespace: &str) -> Arc<Allowlist> {
            let viewer = Some(Namespace::parse(namespace).expect("valid namespace"));
            self.compiled.allowlists[&viewer].allowlist.clone()
        }
    }

    fn reaches(snapshot: &Snapshot, namespace: &str, host: &str) -> bool {
        let target = Target {
            host: Host::parse(host).expect("valid host"),
            port: 443,
        };
        snapshot.policy.decide(namespace, &target).verdict == Verdict::Allow
    }

    #[test]
    fn a_change_in_one_namespace_rebuilds_only_its_allowlist() {
        let mut reloads = Reloads::new(".");
        reloads.entry("a", "api", "api.example.com", "");
        reloads.entry("b", "db", "db.example.com", "");
        reloads.reload().expect("first load");
        let (a, b) = (reloads.kept("a"), reloads.kept("b"));

        reloads.entry("a", "api", "api2.example.com", "");
        let snapshot = reloads.reload().expect("reload");

        assert!(Arc::ptr_eq(&b, &reloads.kept("b")), "b changed nothing");
        assert!(!Arc::ptr_eq(&a, &reloads.kept("a")), "a's entry changed");
        assert!(reaches(&snapshot, "a", "api2.example.com"));
        assert!(!reaches(&snapshot, "a", "api.example.com"));
        assert!(reaches(&snapshot, "b", "db.example.com"));
    }

    #[test]
    fn an_entry_exported_to_another_namespace_reaches_it_though_that_namespace_changed_nothing() {
        let mut reloads = Reloads::new(".");
        reloads.entry("a", "shared", "shared.example.com", "");
        reloads.entry("b", "db", "db.example.com", "");
        let before = reloads.reload().expect("first load");
        assert!(!reaches(&before, "b", "shared.example.com"));

        reloads.entry("a", "shared", "shared.example.com", "\".\", \"b\"");
        let exported = reloads.reload().expect("reload");
        assert!(reaches(&exported, "b", "shared.example.com"));
        assert!(reaches(&exported, "b", "db.example.com"));
        assert!(!reaches(&exported, "c", "shared.example.com"));

        reloads.entry("a", "shared", "shared.example.com", "\"*\"");
        let everyone = reloads.reload().expect("reload");
        assert!(reaches(&everyone, "c", "shared.example.com"));

        std::fs::remove_file(reloads.dir.path().join("serviceentries/a/shared.yaml"))
            .expect("delete the entry");
        let removed = reloads.reload().expect("reload");
        assert!(!reaches(&removed, "c", "shared.example.com"));
        assert!(!reaches(&removed, "a", "shared.example.com"));
    }

    #[test]
    fn a_new_default_export_to_recompiles_entries_it_applies_to() {
        let mut reloads = Reloads::new(".");
        reloads.entry("a", "api", "api.example.com", "");
        let own = reloads.reload().expect("first load");
        assert!(!reaches(&own, "b", "api.example.com"));

        reloads.set_default_export_to("*");
        let everyone = reloads.reload().expect("reload");
        assert!(reaches(&everyone, "b", "api.example.com"));
    }

    #[test]
    fn a_failed_compile_leaves_the_last_good_one_to_reuse() {
        let mut reloads = Reloads::new(".");
        reloads.entry("a", "api", "api.example.com", "");
        reloads.entry("b", "db", "db.example.com", "");
        reloads.reload().expect("first load");
        let b = reloads.kept("b");

        // Only the compile checks `default_export_to`: this fails after loading succeeded.
        reloads.set_default_export_to("no such namespace!");
        let failed = reloads.reload();
        assert!(
            failed
                .as_ref()
                .is_err_and(|e| e.contains("no such namespace")),
            "an invalid default_export_to fails the compile: {failed:?}"
        );

        reloads.set_default_export_to(".");
        let fixed = reloads.reload().expect("the fixed config loads");
        assert!(reaches(&fixed, "a", "api.example.com"));
        assert!(
            Arc::ptr_eq(&b, &reloads.kept("b")),
            "b survived the failure"
        );
    }

    #[test]
    fn an_expiry_rebuilds_only_the_namespace_of_the_expired_entry() {
        let mut reloads = Reloads::new(".");
        reloads.entry("b", "db", "db.example.com", "");
        let api = "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata:\n  name: api\n  annotations: {egress-gateway.io/expires: \"2030-01-01T01:00:00+01:00\"}\nspec:\n  hosts: [api.example.com]\n  ports: [{number: 443, name: https, protocol: HTTPS}]\n  resolution: DNS\n";
        reloads.write(Path::new("serviceentries/a/api.yaml"), api);
        let loaded = load_cached(reloads.dir.path(), &mut reloads.parsed).expect("loads");
        let expiry = SystemTime::UNIX_EPOCH + Duration::from_secs(1_893_456_000);
        let early = expiry - Duration::from_millis(1);
        let before = compile_at(&loaded, 1, &mut reloads.compiled, early).expect("compiles");
        assert!(reaches(&before, "a", "api.example.com"));
        assert_eq!(before.next_expiry, Some(expiry));
        let b = reloads.kept("b");

        let after = compile_at(&loaded, 2, &mut reloads.compiled, expiry).expect("compiles");
        assert!(
            !reaches(&after, "a", "api.example.com"),
            "expired at its instant"
        );
        assert_eq!(after.next_expiry, None);
        assert_eq!(after.expired.len(), 1);
        assert!(after.namespaces.keys().all(|ns| ns.as_str() != "a"));
        assert!(Arc::ptr_eq(&b, &reloads.kept("b")), "b kept its allowlist");
    }
}
