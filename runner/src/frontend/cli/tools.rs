//! `airlock tools`: submit (name and ownership before any compile),
//! bind, list, show and remove registered tools.

use super::run::tool_name;
use super::{EXIT_DENIED, Failure, mcp, open_store};
use crate::admission::ownership::Actor;
use crate::admission::registry::{Registry, RegistryError};
use crate::config::home::Home;
use crate::config::profile;
use crate::execution::engine::Runtime;
use clap::Subcommand;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};

#[derive(Subcommand, Debug)]
pub(super) enum ToolsCommand {
    /// Validate, compile and register a component.
    Add {
        /// The component (`.wasm`).
        wasm: PathBuf,
        /// Name to register it under (default: the file name without `.wasm`).
        #[arg(long)]
        name: Option<String>,
        /// A detached signature (`airlock sign`) to verify and keep.
        #[arg(long)]
        signature: Option<PathBuf>,
        /// Replace a tool of the same name with a different digest (only its
        /// owner, the --actor that added it, or with --admin).
        #[arg(long)]
        replace: bool,
        /// Replace a tool another actor owns, as an admin (recorded in the
        /// control log).
        #[arg(long)]
        admin: bool,
        /// Bind the tool to this profile (offered over MCP, the default of
        /// `POST /v1/runs`); checked against --profiles.
        #[arg(long)]
        profile: Option<String>,
        #[command(flatten)]
        binding: mcp::BindingArgs,
    },
    /// Bind a registered tool to the profile that governs it (recorded with who and when).
    Bind {
        /// Tool name.
        name: String,
        /// Profile name (`DIR/NAME.toml`).
        profile: String,
        #[command(flatten)]
        binding: mcp::BindingArgs,
    },
    /// Remove a tool's binding: it is no longer offered over MCP.
    Unbind {
        /// Tool name.
        name: String,
        #[command(flatten)]
        binding: mcp::BindingArgs,
    },
    /// List registered tools.
    List {
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
    /// Show one tool: digest, world, signer, description and input schema.
    Show {
        /// Tool name.
        name: String,
    },
    /// Remove a tool from the registry (only its owner, the --actor that
    /// added it, or with --admin).
    Remove {
        /// Tool name.
        name: String,
        /// Who removes it (recorded); defaults to the OS user.
        #[arg(long)]
        actor: Option<String>,
        /// Remove a tool another actor owns, as an admin (recorded in the
        /// control log).
        #[arg(long)]
        admin: bool,
    },
}

pub(super) fn tools(home: Home, cmd: ToolsCommand) -> Result<i32, Failure> {
    let store = open_store(&home)?;
    let registry = Registry::new(&*store);
    let registry_error = |e: RegistryError| match e {
        RegistryError::NotOwner { .. } => Failure {
            code: EXIT_DENIED,
            message: e.to_string(),
        },
        other => Failure::usage(other.to_string()),
    };
    match cmd {
        ToolsCommand::Add {
            wasm,
            name,
            signature,
            replace,
            admin,
            profile,
            binding,
        } => {
            if let Some(profile) = &profile {
                profile::load(&binding.profiles, profile)?;
            }
            let bytes = std::fs::read(&wasm)
                .map_err(|e| Failure::usage(format!("tool {}: {e}", wasm.display())))?;
            let signature = signature
                .map(|path| crate::admission::signing::ToolSignature::read_file(&path))
                .transpose()
                .map_err(|e| Failure::usage(e.to_string()))?;
            let refused = |e: crate::service::submit::SubmitError| match e {
                crate::service::submit::SubmitError::Registry(e) => registry_error(e),
                other => Failure::usage(format!("tool {}: {other}", wasm.display())),
            };
            let name = name.unwrap_or_else(|| tool_name(&wasm));
            let by = Actor::local(&binding.actor.clone().unwrap_or_else(mcp::os_user), admin);
            // Name and ownership first: a refused upload costs no compile.
            registry.check_may_add(&name, &by).map_err(registry_error)?;
            crate::service::submit::check_signature(signature.as_ref(), &bytes).map_err(refused)?;
            let runtime = Runtime::new(&home.cache_dir())
                .map_err(|e| Failure::usage(format!("engine: {e:#}")))?;
            let loaded = compile_with_progress(&runtime, &wasm, &bytes)?;
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| Failure::usage(format!("async runtime: {e}")))?;
            let submission = crate::service::submit::Submission {
                name,
                signature,
                replace,
                by,
            };
            let record = rt
                .block_on(crate::service::submit::register(
                    &runtime, &home, &*store, &loaded, &bytes, submission,
                ))
                .map_err(refused)?;
            let world = &record.world;
            say!(
                "added {} {} ({world}{})",
                record.name,
                record.digest,
                record
                    .signer
                    .as_deref()
                    .map(|s| format!(", signed by {s}"))
                    .unwrap_or_default()
            );
            if let Some(profile) = profile {
                mcp::bind(&*store, &binding, &record.name, Some(&profile))?;
            }
            Ok(0)
        }
        ToolsCommand::Bind {
            name,
            profile,
            binding,
        } => {
            registry.get(&name).map_err(registry_error)?;
            profile::load(&binding.profiles, &profile)?;
            mcp::bind(&*store, &binding, &name, Some(&profile))?;
            Ok(0)
        }
        ToolsCommand::Unbind { name, binding } => {
            mcp::bind(&*store, &binding, &name, None)?;
            Ok(0)
        }
        ToolsCommand::List { json } => {
            let records = registry.list().map_err(registry_error)?;
            if json {
                say!(
                    "{}",
                    serde_json::to_string_pretty(&records).unwrap_or_default()
                );
                return Ok(0);
            }
            say!(
                "{:<24} {:<8} {:<24} {:<73} DESCRIPTION",
                "NAME",
                "WORLD",
                "SIGNER",
                "DIGEST"
            );
            for r in records {
                say!(
                    "{:<24} {:<8} {:<24} {:<73} {}",
                    r.name,
                    r.world,
                    r.signer.as_deref().unwrap_or("-"),
                    r.digest,
                    r.description.as_deref().unwrap_or("")
                );
            }
            Ok(0)
        }
        ToolsCommand::Show { name } => {
            let record = registry.get(&name).map_err(registry_error)?;
            say!(
                "{}",
                serde_json::to_string_pretty(&record).unwrap_or_default()
            );
            Ok(0)
        }
        ToolsCommand::Remove { name, actor, admin } => {
            let by = Actor::local(&actor.unwrap_or_else(mcp::os_user), admin);
            let digest = registry.remove(&name, &by).map_err(registry_error)?;
            say!("removed {name} ({digest}) as {by}");
            Ok(0)
        }
    }
}

/// Compiles (or fetches from the cache) with a progress line on stderr.
pub(super) fn compile_with_progress(
    runtime: &Runtime,
    path: &Path,
    bytes: &[u8],
) -> Result<std::sync::Arc<crate::execution::engine::LoadedTool>, Failure> {
    let started = std::time::Instant::now();
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let spinner = std::io::stderr().is_terminal().then(|| {
        let done = std::sync::Arc::clone(&done);
        let label = path.display().to_string();
        std::thread::spawn(move || {
            let frames = ['|', '/', '-', '\\'];
            let mut i = 0;
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                eprint!("\rairlock: compiling {label} {}", frames[i % frames.len()]);
                i += 1;
                std::thread::sleep(std::time::Duration::from_millis(120));
            }
            eprint!("\r");
        })
    });
    if spinner.is_none() {
        eprintln!(
            "airlock: compiling {} ({} KiB)",
            path.display(),
            bytes.len() / 1024
        );
    }
    let loaded = runtime.load_bytes(path, bytes);
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    if let Some(spinner) = spinner {
        let _ = spinner.join();
    }
    let loaded = loaded?;
    eprintln!(
        "airlock: compiled {} in {} ms",
        path.display(),
        started.elapsed().as_millis()
    );
    Ok(loaded)
}
