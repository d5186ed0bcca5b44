//! Compiling `upstream.proxy` and `upstream.namespaces` into the routes the dialler follows,
//! reading each parent's credentials file and TLS CA bundle (so a rotated password or CA applies
//! on the next reload).

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use crate::config::gateway::{ParentProxy, Upstream};
use crate::config::Diagnostic;
use crate::dial::parent_tls::ParentTls;
use crate::dial::{Parent, ParentRoutes};
use crate::names::{Host, Namespace};

use super::compile::gateway_position;

/// The routes `upstream` describes; every problem names `gateway.yaml` and the key.
pub fn compile_parents(
    upstream: &Upstream,
    file: &Path,
    problems: &mut Vec<Diagnostic>,
) -> ParentRoutes {
    let default = upstream
        .proxy
        .as_ref()
        .and_then(|parent| compile_one("upstream.proxy", parent, file, problems));
    let mut namespaces = HashMap::new();
    for (namespace, route) in &upstream.namespaces {
        let section = format!("upstream.namespaces.{namespace}");
        if let Err(message) = Namespace::parse(namespace) {
            problem(problems, file, &section, &message);
            continue;
        }
        let parent = match (&route.proxy, route.direct) {
            (Some(_), true) => {
                problem(
                    problems,
                    file,
                    &section,
                    "set `proxy` or `direct: true`, not both",
                );
                continue;
            }
            (Some(parent), false) => {
                compile_one(&format!("{section}.proxy"), parent, file, problems)
            }
            (None, true) => None,
            (None, false) => default.clone(),
        };
        namespaces.insert(namespace.clone(), parent);
    }
    ParentRoutes::new(default, namespaces)
}

fn compile_one(
    section: &str,
    parent: &ParentProxy,
    file: &Path,
    problems: &mut Vec<Diagnostic>,
) -> Option<Arc<Parent>> {
    let credentials = match &parent.credentials_file {
        None => Ok(None),
        Some(path) => std::fs::read_to_string(path)
            .map(Some)
            .map_err(|err| format!("credentials_file {}: {err}", path.display())),
    };
    let tls = |host: &Host| match &parent.tls {
        None => Ok(None),
        Some(tls) => std::fs::read(&tls.ca_file)
            .map_err(|err| format!("tls.ca_file {}: {err}", tls.ca_file.display()))
            .and_then(|pem| ParentTls::new(&pem, tls.server_name.as_deref(), host))
            .map(Some)
            .map_err(|message| format!("tls: {message}")),
    };
    let parsed = credentials.and_then(|text| {
        let mut parsed = Parent::new(&parent.address, text.as_deref())?;
        parsed.tls = tls(&parsed.host)?;
        Ok(parsed)
    });
    match parsed {
        Ok(parent) => Some(Arc::new(parent)),
        Err(message) => {
            problem(problems, file, section, &message);
            None
        }
    }
}

fn problem(problems: &mut Vec<Diagnostic>, file: &Path, section: &str, message: &str) {
    let position = gateway_position(file, section);
    problems.push(Diagnostic::error(
        file,
        position,
        format!("{section}: {message}"),
    ));
}
