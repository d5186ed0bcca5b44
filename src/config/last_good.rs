//! The last good config: a copy of the inputs (gateway.yaml and the ServiceEntry tree) of the
//! latest config that loaded, kept in `state_dir` so that a start-up with an invalid config can
//! serve the last policy that was valid instead of exiting (and crash-looping).
//!
//! Layout inside `state_dir`: `last-good` is a symlink to a `config-<stamp>` folder holding
//! `gateway.yaml` and `serviceentries/`. A new copy is written to a staging folder, renamed into
//! place, and the symlink is swapped with one `rename(2)`, so a crash at any moment leaves either
//! the previous copy or the new one, never half of one. Only this module writes there.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use sha2::{Digest, Sha256};

use super::load::{hex, FileDigest, Sources, GATEWAY_FILE};
use super::LoadedConfig;

/// The symlink naming the current copy.
const LAST_GOOD: &str = "last-good";
/// Prefix of copy folders.
const COPY_PREFIX: &str = "config-";
/// Folder of the ServiceEntry tree inside a copy.
const ENTRIES: &str = "serviceentries";

/// Copies the files `loaded` was read from into `state_dir` and makes that copy the last good
/// one. Each file is re-read and must still have the digest it was loaded with; a file that
/// changed meanwhile fails the copy (the previous copy stays), and the next reload copies again.
pub fn persist(state_dir: &Path, loaded: &LoadedConfig) -> io::Result<()> {
    fs::create_dir_all(state_dir)?;
    let stamp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let staging = state_dir.join(format!(".staging-{}-{stamp}", std::process::id()));
    let written = write_copy(&staging, loaded);
    if let Err(err) = written {
        let _ = fs::remove_dir_all(&staging);
        return Err(err);
    }
    let name = format!("{COPY_PREFIX}{stamp}");
    fs::rename(&staging, state_dir.join(&name))?;
    let link = state_dir.join(format!(".{LAST_GOOD}-{}-{stamp}", std::process::id()));
    std::os::unix::fs::symlink(&name, &link)?;
    fs::rename(&link, state_dir.join(LAST_GOOD))?;
    remove_older_copies(state_dir, &name);
    Ok(())
}

fn write_copy(staging: &Path, loaded: &LoadedConfig) -> io::Result<()> {
    let gateway_file = loaded.dir.join(GATEWAY_FILE);
    for file in &loaded.files {
        let relative = if file.path == gateway_file {
            PathBuf::from(GATEWAY_FILE)
        } else if let Ok(inside) = file.path.strip_prefix(&loaded.gateway.serviceentries.dir) {
            Path::new(ENTRIES).join(inside)
        } else {
            continue;
        };
        let bytes = unchanged(file)?;
        let target = staging.join(relative);
        if let Some(parent) = target.parent() {
            fs::create_dir_all(parent)?;
        }
        fs::write(target, bytes)?;
    }
    fs::create_dir_all(staging.join(ENTRIES))
}

/// The bytes of `file`, if they are still the ones that loaded.
fn unchanged(file: &FileDigest) -> io::Result<Vec<u8>> {
    let bytes = fs::read(&file.path)?;
    if hex(&Sha256::digest(&bytes)) != file.sha256 {
        return Err(io::Error::other(format!(
            "{} changed after it was loaded",
            file.path.display()
        )));
    }
    Ok(bytes)
}

fn remove_older_copies(state_dir: &Path, keep: &str) {
    let Ok(listing) = fs::read_dir(state_dir) else {
        return;
    };
    for item in listing.flatten() {
        let name = item.file_name();
        let name = name.to_string_lossy();
        let stale_copy = name.starts_with(COPY_PREFIX) && name != keep;
        let stale_staging = name.starts_with(".staging-");
        if stale_copy || stale_staging {
            let _ = fs::remove_dir_all(item.path());
        }
    }
}

/// Where to load the last good copy from, if `state_dir` holds one: its gateway.yaml and
/// ServiceEntry tree, with relative paths (TLS files, and the ServiceEntry folder to watch)
/// still resolved against the config directory `dir`.
pub fn sources(state_dir: &Path, dir: &Path) -> Option<Sources> {
    let copy = state_dir.join(LAST_GOOD).canonicalize().ok()?;
    let gateway_file = copy.join(GATEWAY_FILE);
    gateway_file.is_file().then(|| Sources {
        dir: dir.to_path_buf(),
        gateway_file,
        entries_from: Some(copy.join(ENTRIES)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(path: &Path, text: &str) {
        fs::create_dir_all(path.parent().expect("a parent")).expect("mkdir");
        fs::write(path, text).expect("write");
    }

    const ENTRY: &str = "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: api}\nspec:\n  hosts: [api.example.com]\n  ports: [{number: 443, name: https, protocol: HTTPS}]\n  resolution: DNS\n";

    #[test]
    fn a_persisted_copy_loads_as_the_config_did_and_replaces_the_previous_one() {
        let config = tempfile::tempdir().expect("tempdir");
        let state = tempfile::tempdir().expect("tempdir");
        write(
            &config.path().join(GATEWAY_FILE),
            "listeners:\n  connect: {address: \"127.0.0.1:0\"}\nserviceentries: {dir: allow}\n",
        );
        write(&config.path().join("allow/team-a/api.yaml"), ENTRY);
        let loaded = super::super::load(config.path()).expect("loads");
        persist(state.path(), &loaded).expect("persist");
        persist(state.path(), &loaded).expect("persist again");
        let copies = fs::read_dir(state.path())
            .expect("list")
            .flatten()
            .filter(|i| i.file_name().to_string_lossy().starts_with(COPY_PREFIX))
            .count();
        assert_eq!(copies, 1, "the older copy is removed");

        write(
            &config.path().join("allow/team-a/api.yaml"),
            "kind: [broken",
        );
        let sources = sources(state.path(), config.path()).expect("a copy");
        let mut cache = super::super::load::ParseCache::default();
        let restored = super::super::load::load_from(&sources, &mut cache).expect("loads");
        assert_eq!(restored.entries.len(), 1);
        assert_eq!(restored.entries[0].namespace.as_str(), "team-a");
        assert_eq!(
            restored.gateway.serviceentries.dir,
            config.path().join("allow"),
            "the folder to watch is still the config's own"
        );
    }

    #[test]
    fn a_state_dir_inside_the_allowlist_folder_is_refused() {
        let config = tempfile::tempdir().expect("tempdir");
        write(
            &config.path().join(GATEWAY_FILE),
            "listeners:\n  connect: {address: \"127.0.0.1:0\"}\nstate_dir: serviceentries/state\n",
        );
        fs::create_dir_all(config.path().join("serviceentries")).expect("mkdir");
        let problems = super::super::load(config.path()).expect_err("refused");
        let shown = problems[0].to_string();
        assert!(shown.contains("gateway.yaml:3:1: state_dir"), "{shown}");
        assert!(shown.contains("is inside serviceentries.dir"), "{shown}");
    }

    #[test]
    fn no_copy_means_no_sources() {
        let state = tempfile::tempdir().expect("tempdir");
        assert!(sources(state.path(), Path::new("/nonexistent")).is_none());
    }
}
