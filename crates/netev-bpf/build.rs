//! Compiles the BPF C with clang and generates the Rust skeleton into OUT_DIR.
use std::env;
use std::path::PathBuf;

use libbpf_cargo::SkeletonBuilder;

const CGROUP_SRC: &str = "src/bpf/netev.bpf.c";
const LSM_SRC: &str = "src/bpf/netev_lsm.bpf.c";

fn main() {
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("OUT_DIR is set by cargo"));
    let arch = env::var("CARGO_CFG_TARGET_ARCH").expect("target arch is set by cargo");
    // The syscall tracepoints read socket()'s and listen()'s arguments back
    // from the saved user registers by their x86-64 names; on another
    // architecture they would read the wrong registers and report garbage.
    assert!(
        arch == "x86_64",
        "netev-bpf is x86_64 only, not {arch}: porting it means giving struct pt_regs___netev \
         (src/bpf/kernel_types.h) the target's argument registers and reading them in \
         syscall_regs()'s callers (src/bpf/netev.bpf.c)"
    );
    // Two objects, one per backend, sharing src/bpf/common.h: each loads
    // alone, so a kernel that refuses one backend's program types can still
    // run the other.
    for (src, name) in [(CGROUP_SRC, "netev"), (LSM_SRC, "netev_lsm")] {
        SkeletonBuilder::new()
            .source(src)
            // Kept in OUT_DIR (not a temporary directory) so that the ABI
            // test can read the BTF clang emitted (src/abi_btf.rs).
            .obj(out.join(format!("{name}.o")))
            .clang_args([
                // asm/types.h lives under the multiarch include dir on Debian.
                format!("-I/usr/include/{arch}-linux-gnu"),
                // atomic exchange (coalescing) needs BPF ISA v3.
                "-mcpu=v3".to_string(),
                "-Wall".to_string(),
            ])
            .build_and_generate(out.join(format!("{name}.skel.rs")))
            .unwrap_or_else(|e| {
                panic!("compiling {src} failed (is clang installed? run scripts/setup.sh): {e}")
            });
    }
    println!("cargo:rerun-if-changed=src/bpf");
}
