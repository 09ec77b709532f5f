//! The engine: one wasmtime `Engine` per process, the linker with every
//! host interface, the on-disk compile cache and the per-tool `InstancePre`
//! cache.
//!
//! Defends against: runaway CPU (fuel and epoch interruption are always on),
//! memory exhaustion across concurrent runs (the pooling allocator bounds
//! slots up front), and recompiling on every run (compiled code is cached on
//! disk keyed by the component's digest and the engine's settings, and
//! pre-linked instances are reused across runs of the same tool).

use airlock_host_api::tool::ToolPre;
use airlock_host_api::{RunState, add_to_linker};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;
use wasmtime::component::{Component, Linker};
use wasmtime::{Cache, CacheConfig, Config, Engine, PoolingAllocationConfig};
use wasmtime_wasi::p2::bindings::CommandPre;

/// How often the epoch advances. Guests yield to the scheduler at every
/// tick, which is how a wall-clock timeout reaches a guest spinning in a
/// loop; the tick bounds how late a timeout can fire.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Instances (and fibers) the pool holds at once by default: bounds
/// concurrent runs per process and the address space reserved up front.
pub const POOL_INSTANCES: u32 = 256;

/// Most instances a pool may be given ([`Runtime::with_instances`]). Each
/// instance may reserve two memory slots of up to [`POOL_MAX_MEMORY`] plus
/// guard regions as virtual address space (not resident memory); 2,048
/// instances stay near 40 TiB, well inside the 128 TiB a 64-bit Linux
/// process can map.
pub const MAX_POOL_INSTANCES: u32 = 2048;

/// Largest linear memory slot; profiles may grant up to this much.
pub const POOL_MAX_MEMORY: usize = crate::config::profile::MAX_MEMORY as usize;

/// The wasm stack a guest may use before it traps (deep recursion ends the
/// run with a stack limit instead of overflowing the host stack).
pub const MAX_WASM_STACK: usize = 1 << 20;

/// What kind of component a tool is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum World {
    /// `airlock:host/tool`: `run(input) -> result<string, string>`.
    Tool,
    /// `wasi:cli/command`: args, stdin, stdout, exit code.
    Command,
}

impl World {
    /// The short name the registry keeps (`tool`, `command`).
    pub fn as_str(self) -> &'static str {
        match self {
            World::Tool => "tool",
            World::Command => "command",
        }
    }

    /// The WIT world it implements, for messages and evidence.
    pub fn wit_name(self) -> &'static str {
        match self {
            World::Tool => "airlock:host/tool",
            World::Command => "wasi:cli/command",
        }
    }
}

/// A tool ready to instantiate.
pub struct LoadedTool {
    /// SHA-256 of the component bytes, `sha256:<hex>`.
    pub digest: String,
    /// The world it implements.
    pub world: World,
    pre: Pre,
}

enum Pre {
    Tool(ToolPre<RunState>),
    Command(CommandPre<RunState>),
}

impl LoadedTool {
    /// Pre-linked `tool` world, when it is one.
    pub fn as_tool(&self) -> Option<&ToolPre<RunState>> {
        match &self.pre {
            Pre::Tool(pre) => Some(pre),
            Pre::Command(_) => None,
        }
    }

    /// Pre-linked `wasi:cli/command`, when it is one.
    pub fn as_command(&self) -> Option<&CommandPre<RunState>> {
        match &self.pre {
            Pre::Command(pre) => Some(pre),
            Pre::Tool(_) => None,
        }
    }
}

/// Why a component cannot run.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The file could not be read.
    #[error("tool {path}: cannot be read: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A core module was given where a component is needed.
    #[error(
        "tool {path}: is a core WebAssembly module, not a component; build it for the wasm32-wasip2 target (cargo build --target wasm32-wasip2) so it is a component"
    )]
    CoreModule {
        /// The file.
        path: PathBuf,
    },
    /// Not WebAssembly, or invalid.
    #[error("tool {path}: is not a valid WebAssembly component: {reason}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// The validator's or compiler's message.
        reason: String,
    },
    /// The component needs imports airlock does not provide, or exports
    /// neither supported world.
    #[error("tool {path}: {reason}")]
    Unsupported {
        /// The file.
        path: PathBuf,
        /// Which import or export is the problem.
        reason: String,
    },
}

/// The process-wide engine, linker and caches.
pub struct Runtime {
    engine: Engine,
    linker: Linker<RunState>,
    tools: Mutex<HashMap<String, Arc<LoadedTool>>>,
    ticker: Option<Ticker>,
}

struct Ticker {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for Ticker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Runtime {
    /// Creates the engine with [`POOL_INSTANCES`] instance slots.
    /// `cache_dir` holds compiled code across processes.
    pub fn new(cache_dir: &Path) -> wasmtime::Result<Self> {
        Runtime::with_instances(cache_dir, POOL_INSTANCES)
    }

    /// Creates the engine with room for `instances` concurrent runs
    /// (clamped to 1..=[`MAX_POOL_INSTANCES`]); `airlock serve` sizes it to
    /// its run pool.
    pub fn with_instances(cache_dir: &Path, instances: u32) -> wasmtime::Result<Self> {
        let instances = instances.clamp(1, MAX_POOL_INSTANCES);
        let mut config = Config::new();
        config
            .consume_fuel(true)
            .epoch_interruption(true)
            .wasm_component_model(true)
            .max_wasm_stack(MAX_WASM_STACK);
        let mut pool = PoolingAllocationConfig::new();
        pool.total_component_instances(instances)
            .total_core_instances(instances * 4)
            .total_memories(instances * 2)
            .total_tables(instances * 4)
            .total_stacks(instances)
            .max_memory_size(POOL_MAX_MEMORY);
        config.allocation_strategy(pool);
        std::fs::create_dir_all(cache_dir)?;
        let mut cache = CacheConfig::new();
        cache.with_directory(cache_dir);
        config.cache(Some(Cache::new(cache)?));
        let engine = Engine::new(&config)?;
        let mut linker = Linker::new(&engine);
        add_to_linker(&mut linker)?;
        let ticker = Some(start_ticker(&engine));
        Ok(Runtime {
            engine,
            linker,
            tools: Mutex::new(HashMap::new()),
            ticker,
        })
    }

    /// The engine.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Loads the component at `path` (compiling it on first use), checks it
    /// implements a supported world and pre-links it.
    pub fn load(&self, path: &Path) -> Result<Arc<LoadedTool>, LoadError> {
        let bytes = std::fs::read(path).map_err(|source| LoadError::Read {
            path: path.to_owned(),
            source,
        })?;
        self.load_bytes(path, &bytes)
    }

    /// Like [`Self::load`] for bytes already in memory.
    pub fn load_bytes(&self, path: &Path, bytes: &[u8]) -> Result<Arc<LoadedTool>, LoadError> {
        let digest = format!("sha256:{}", airlock_host_api::evidence::sha256_hex(bytes));
        self.load_digested(path, bytes, digest)
    }

    /// Like [`Self::load_bytes`] for bytes whose digest (`sha256:…`) the
    /// caller has just computed from them, as the registry does on every
    /// load: the bytes are not hashed a second time.
    pub fn load_digested(
        &self,
        path: &Path,
        bytes: &[u8],
        digest: String,
    ) -> Result<Arc<LoadedTool>, LoadError> {
        if let Some(tool) = self.lock_tools().get(&digest) {
            return Ok(Arc::clone(tool));
        }
        if is_core_module(bytes) {
            return Err(LoadError::CoreModule {
                path: path.to_owned(),
            });
        }
        let component = Component::new(&self.engine, bytes).map_err(|e| LoadError::Invalid {
            path: path.to_owned(),
            reason: format!("{e:#}"),
        })?;
        let unsupported = |reason: String| LoadError::Unsupported {
            path: path.to_owned(),
            reason,
        };
        let instance_pre = self.linker.instantiate_pre(&component).map_err(|e| {
            unsupported(format!(
                "imports something airlock does not provide ({e:#}); tools may import WASI 0.2 and airlock:host@0.1.0"
            ))
        })?;
        let exports = export_names(&self.engine, &component);
        let pre = if exports.iter().any(|e| e == "run") && exports.iter().any(|e| e == "describe") {
            Pre::Tool(ToolPre::new(instance_pre).map_err(|e| {
                unsupported(format!(
                    "exports run/describe with the wrong types for airlock:host/tool ({e:#})"
                ))
            })?)
        } else if exports.iter().any(|e| e.starts_with("wasi:cli/run@0.2")) {
            Pre::Command(CommandPre::new(instance_pre).map_err(|e| {
                unsupported(format!("exports wasi:cli/run with the wrong type ({e:#})"))
            })?)
        } else {
            return Err(unsupported(format!(
                "exports neither the airlock:host/tool world (run, describe) nor wasi:cli/command (wasi:cli/run); it exports: [{}]",
                exports.join(", ")
            )));
        };
        let world = match pre {
            Pre::Tool(_) => World::Tool,
            Pre::Command(_) => World::Command,
        };
        let tool = Arc::new(LoadedTool {
            digest: digest.clone(),
            world,
            pre,
        });
        self.lock_tools().insert(digest, Arc::clone(&tool));
        Ok(tool)
    }

    fn lock_tools(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<LoadedTool>>> {
        // The map holds only fully built entries; a panic elsewhere cannot
        // leave it half-updated.
        self.tools.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        self.ticker.take();
    }
}

fn start_ticker(engine: &Engine) -> Ticker {
    let stop = Arc::new(AtomicBool::new(false));
    let engine = engine.clone();
    let flag = Arc::clone(&stop);
    let thread = std::thread::Builder::new()
        .name("airlock-epoch".into())
        .spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                std::thread::sleep(EPOCH_TICK);
                engine.increment_epoch();
            }
        })
        .ok();
    Ticker { stop, thread }
}

/// A core module starts with the wasm magic and version 1; a component
/// with the same magic and the component layer/version.
fn is_core_module(bytes: &[u8]) -> bool {
    bytes.len() >= 8 && bytes[..4] == *b"\0asm" && bytes[4..8] == [1, 0, 0, 0]
}

fn export_names(engine: &Engine, component: &Component) -> Vec<String> {
    component
        .component_type()
        .exports(engine)
        .map(|(name, _)| name.to_owned())
        .collect()
}
