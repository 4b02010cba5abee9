//! `magprior`: reconstruct magnetic textures from NV magnetometry and Lorentz TEM data.

mod cli;

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "magprior",
    version,
    about = "Physics-informed deep image prior reconstruction of magnetic textures (NV magnetometry, Lorentz TEM)"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Scanning NV magnetometry: forward model, deprojection, NV-DIP reconstruction, sweeps.
    #[command(subcommand)]
    Nv(cli::nv::NvCmd),
    /// Lorentz TEM: simulation, forward model, SITIE, SIPRAD reconstruction, series, induction.
    #[command(subcommand)]
    Ltem(cli::ltem::LtemCmd),
    /// One magnetisation fitted to a B_NV map and a Lorentz-TEM image or phase of the same
    /// element (grids registered by a given or fitted offset and rotation).
    Joint(Box<cli::joint::JointArgs>),
    /// Simulate and reconstruct a synthetic Landau-state ellipse; writes ./magprior-demo/.
    Demo {
        /// Iterations of the reconstruction.
        #[arg(long, default_value_t = 1500)]
        iters: usize,
        /// Output directory.
        #[arg(long, default_value = "magprior-demo")]
        out: PathBuf,
        /// No progress output.
        #[arg(long)]
        quiet: bool,
    },
    /// Compute devices and build information.
    Info,
    /// Combine the shares of a job run with --shard I/N (e.g. a Slurm job array) in DIR into
    /// the outputs one process would have written.
    Merge {
        /// The job's output directory (holding shard-I-of-N/).
        dir: PathBuf,
    },
}

fn main() -> ExitCode {
    // reuse freed activations instead of page-faulting them in anew (large images)
    magprior::keep_freed_buffers();
    // Mesa's Vulkan device-select layer prints "XDG_RUNTIME_DIR is invalid" on headless machines
    // while adapters are probed; it has nothing to select here. (Set before any thread starts.)
    if std::env::var_os("XDG_RUNTIME_DIR").is_none()
        && std::env::var_os("NODEVICE_SELECT").is_none()
    {
        std::env::set_var("NODEVICE_SELECT", "1");
    }
    let cli = Cli::parse();
    // Ctrl-C stops long runs cleanly from the first iteration on
    cli::common::interrupt_flag();
    let result = match cli.cmd {
        Cmd::Nv(c) => cli::nv::run(c),
        Cmd::Ltem(c) => cli::ltem::run(c),
        Cmd::Joint(a) => cli::joint::run(*a),
        Cmd::Demo { iters, out, quiet } => cli::nv::demo(iters.max(1), quiet, &out),
        Cmd::Merge { dir } => cli::merge::run(&dir),
        Cmd::Info => {
            println!("magprior {}", env!("CARGO_PKG_VERSION"));
            println!(
                "CPU backend: {} rayon threads",
                rayon::current_num_threads()
            );
            let adapters = magprior::Device::list_adapters();
            if adapters.is_empty() {
                println!("GPU adapters: none found (--device auto runs on the CPU)");
            } else {
                println!("GPU adapters (name (backend, type, driver)):");
                for a in &adapters {
                    println!("  {a}");
                }
            }
            match magprior::Device::select(magprior::DeviceChoice::Auto) {
                Ok((d, note)) => {
                    let name = d
                        .adapter()
                        .map_or_else(|| "CPU backend".into(), |a| a.to_string());
                    println!("--device auto uses: {name}");
                    if let Some(n) = note {
                        println!("  ({n})");
                    }
                }
                Err(e) => println!("--device auto: {e}"),
            }
            Ok(())
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // one line: the outermost message and the causes it does not already say
            let mut msg = e.to_string();
            for cause in e.chain().skip(1) {
                let c = cause.to_string();
                if !msg.contains(&c) {
                    msg.push_str(": ");
                    msg.push_str(&c);
                }
            }
            eprintln!("error: {msg}");
            ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn cli_definition_is_consistent() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }
}
