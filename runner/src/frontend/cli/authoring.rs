//! `airlock new` and `airlock build`: arguments, handlers and output. The
//! work is in [`crate::service::authoring`].

use super::{EXIT_USAGE, Failure};
use crate::service::authoring::{self, AuthoringError, Lang, Sdk};
use clap::Args;
use std::path::PathBuf;

/// Where the WIT and SDKs come from.
#[derive(Args, Debug)]
pub(super) struct SdkArg {
    /// Root of the airlock checkout whose host-api/wit and guest-sdk/ to
    /// build against (default: the checkout this airlock was built from).
    #[arg(long, env = "AIRLOCK_SDK")]
    sdk: Option<PathBuf>,
}

/// `airlock new`.
#[derive(Args, Debug)]
pub(super) struct NewArgs {
    /// The project directory to create; its name is the tool's name.
    path: PathBuf,
    /// The language to write the tool in.
    #[arg(long, value_enum)]
    lang: Lang,
    #[command(flatten)]
    sdk: SdkArg,
}

/// `airlock build`.
#[derive(Args, Debug)]
pub(super) struct BuildArgs {
    /// The tool project (default: the current directory).
    #[arg(default_value = ".")]
    dir: PathBuf,
    /// Where to write the component (default: DIR/target/NAME.wasm).
    #[arg(long)]
    out: Option<PathBuf>,
    #[command(flatten)]
    sdk: SdkArg,
}

fn failure(e: AuthoringError) -> Failure {
    Failure {
        code: if e.is_usage() { EXIT_USAGE } else { 1 },
        message: e.to_string(),
    }
}

pub(super) fn new(args: NewArgs) -> Result<i32, Failure> {
    let sdk = Sdk::locate(args.sdk.sdk.as_deref()).map_err(failure)?;
    let made = authoring::scaffold::scaffold(&args.path, args.lang, &sdk).map_err(failure)?;
    let dir = made.dir.display();
    say!(
        "created {} tool `{}` in {dir}:",
        args.lang.display_name(),
        made.name
    );
    for file in &made.files {
        say!("  {}", file.display());
    }
    say!(
        "next: airlock build {dir} && airlock run --profiles {dir}/profiles --profile {} --input @{dir}/input.json {dir}/target/{}.wasm",
        made.name,
        made.name
    );
    Ok(0)
}

pub(super) fn build(args: BuildArgs) -> Result<i32, Failure> {
    let sdk = Sdk::locate(args.sdk.sdk.as_deref()).map_err(failure)?;
    let built = authoring::build::build(&args.dir, args.out.as_deref(), &sdk).map_err(failure)?;
    say!("{}", built.path.display());
    eprintln!(
        "airlock: built {} tool in {:.1?}",
        built.lang.display_name(),
        built.elapsed
    );
    Ok(0)
}
