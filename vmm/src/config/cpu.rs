//! `-cpu MODEL[,+FLAG|-FLAG|FLAG=on|off|vendor=STRING]...`: the CPU model and the CPUID feature
//! flags switched on or off, by QEMU's names. What KVM lets a VMM show or hide is what it
//! reports as supported: a flag switched on that KVM does not support stays off, with QEMU's
//! warning (see `vstate::cpuid::apply`).
use super::parse::bad;
use super::ConfigError;

/// The models minnow knows. `host` and `max` are the same under KVM: everything KVM supports.
/// `qemu64` and `kvm64` are QEMU's generic 64-bit models: their feature set, each feature only
/// where KVM supports it, QEMU's signature and vendor.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum CpuModel {
    #[default]
    Host,
    Max,
    Qemu64,
    Kvm64,
}

/// A CPUID register: leaf, sub-leaf, register.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Word {
    pub leaf: u32,
    pub index: u32,
    pub reg: Reg,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reg {
    Eax,
    Ebx,
    Ecx,
    Edx,
}

/// One named CPUID feature bit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Feature {
    pub name: &'static str,
    pub word: Word,
    /// The bit QEMU names it by.
    pub bit: u32,
    /// Every bit it stands for: `kvmclock` is both of KVM's clock bits (0 and 3), as in QEMU.
    pub bits: u32,
}

impl std::fmt::Display for Feature {
    /// QEMU's way of naming it: `CPUID.07H:EBX.hle [bit 4]`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let reg = match self.word.reg {
            Reg::Eax => "EAX",
            Reg::Ebx => "EBX",
            Reg::Ecx => "ECX",
            Reg::Edx => "EDX",
        };
        let leaf = self.word.leaf;
        write!(f, "CPUID.{leaf:02X}H:{reg}.{} [bit {}]", self.name, self.bit)
    }
}

/// `-cpu` as given.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CpuConfig {
    pub model: CpuModel,
    /// Each flag switched on (`true`) or off, in command-line order (the last one wins).
    pub flags: Vec<(Feature, bool)>,
    /// `vendor=`: the 12-character vendor string of leaf 0.
    pub vendor: Option<[u8; 12]>,
}

/// Parses `-cpu`'s value.
pub fn parse_cpu(value: &str) -> Result<CpuConfig, ConfigError> {
    let mut parts = value.split(',');
    let model = match parts.next().unwrap_or_default() {
        "host" => CpuModel::Host,
        "max" => CpuModel::Max,
        "qemu64" => CpuModel::Qemu64,
        "kvm64" => CpuModel::Kvm64,
        m => {
            return Err(bad(
                "-cpu",
                m,
                ": minnow has the models host, max, qemu64 and kvm64",
            ))
        }
    };
    let mut cpu = CpuConfig {
        model,
        ..CpuConfig::default()
    };
    for part in parts.filter(|p| !p.is_empty()) {
        let (name, on) = match (
            part.strip_prefix('+'),
            part.strip_prefix('-'),
            part.split_once('='),
        ) {
            (Some(name), _, _) => (name, true),
            (_, Some(name), _) => (name, false),
            (_, _, Some(("vendor", v))) => {
                cpu.vendor = Some(parse_vendor(v)?);
                continue;
            }
            (_, _, Some((name, v))) => (name, parse_switch("-cpu", name, v)?),
            _ => (part, true),
        };
        let feature = feature(name).ok_or_else(|| {
            bad(
                "-cpu",
                part,
                ": not a CPUID feature minnow knows (QEMU's names, as in `+x2apic` or `avx2=off`)",
            )
        })?;
        cpu.flags.push((feature, on));
    }
    Ok(cpu)
}

/// `-overcommit mem-lock=off,cpu-pm=on|off`: returns `cpu-pm` (`cpu_pm` if not given). Minnow
/// never locks guest memory: `mem-lock=on` is refused.
pub fn parse_overcommit(value: &str, mut cpu_pm: bool) -> Result<bool, ConfigError> {
    for part in value.split(',').filter(|p| !p.is_empty()) {
        match part.split_once('=') {
            Some(("cpu-pm", v)) => cpu_pm = parse_switch("-overcommit", "cpu-pm", v)?,
            Some(("mem-lock", "off" | "false" | "no")) => {}
            Some(("mem-lock", v)) => {
                return Err(bad(
                    "-overcommit",
                    &format!("mem-lock={v}"),
                    ": minnow does not lock guest memory (mem-lock=off only)",
                ))
            }
            _ => return Err(bad("-overcommit", part, ": use cpu-pm=on|off or mem-lock=off")),
        }
    }
    Ok(cpu_pm)
}

/// `on` or `off` (and QEMU's other spellings) for `option`'s `name=`.
fn parse_switch(option: &str, name: &str, v: &str) -> Result<bool, ConfigError> {
    match v {
        "on" | "true" | "yes" => Ok(true),
        "off" | "false" | "no" => Ok(false),
        _ => Err(bad(option, &format!("{name}={v}"), ": use on or off")),
    }
}

fn parse_vendor(v: &str) -> Result<[u8; 12], ConfigError> {
    v.as_bytes()
        .try_into()
        .map_err(|_| bad("-cpu", &format!("vendor={v}"), ": the vendor is 12 characters"))
}

/// The feature named `name` (QEMU's name; `_` and `-` are the same, and QEMU's aliases).
pub fn feature(name: &str) -> Option<Feature> {
    let name = name.replace('_', "-");
    let name = match name.as_str() {
        "sse3" => "pni",
        "sse4.1" => "sse4-1",
        "sse4.2" => "sse4-2",
        "xd" => "nx",
        "i64" => "lm",
        "ffxsr" => "fxsr-opt",
        "hypervisor-bit" => "hypervisor",
        n => n,
    }
    .to_string();
    features().find(|f| f.name == name)
}

/// Every feature minnow knows, by QEMU's names.
pub fn features() -> impl Iterator<Item = Feature> {
    FEATURES.iter().map(|&(name, leaf, index, reg, bit)| Feature {
        name,
        word: Word { leaf, index, reg },
        bit,
        bits: match name {
            "kvmclock" => 1 | (1 << 3),
            _ => 1 << bit,
        },
    })
}

use Reg::{Eax, Ebx, Ecx, Edx};

/// QEMU's feature names (target/i386/cpu.c's `feature_word_info`) for the registers a VMM sets:
/// (name, leaf, sub-leaf, register, bit).
#[rustfmt::skip]
const FEATURES: &[(&str, u32, u32, Reg, u32)] = &[
    // CPUID.01H:EDX
    ("fpu", 1, 0, Edx, 0), ("vme", 1, 0, Edx, 1), ("de", 1, 0, Edx, 2), ("pse", 1, 0, Edx, 3),
    ("tsc", 1, 0, Edx, 4), ("msr", 1, 0, Edx, 5), ("pae", 1, 0, Edx, 6), ("mce", 1, 0, Edx, 7),
    ("cx8", 1, 0, Edx, 8), ("apic", 1, 0, Edx, 9), ("sep", 1, 0, Edx, 11), ("mtrr", 1, 0, Edx, 12),
    ("pge", 1, 0, Edx, 13), ("mca", 1, 0, Edx, 14), ("cmov", 1, 0, Edx, 15), ("pat", 1, 0, Edx, 16),
    ("pse36", 1, 0, Edx, 17), ("pn", 1, 0, Edx, 18), ("clflush", 1, 0, Edx, 19),
    ("ds", 1, 0, Edx, 21), ("acpi", 1, 0, Edx, 22), ("mmx", 1, 0, Edx, 23), ("fxsr", 1, 0, Edx, 24),
    ("sse", 1, 0, Edx, 25), ("sse2", 1, 0, Edx, 26), ("ss", 1, 0, Edx, 27), ("ht", 1, 0, Edx, 28),
    ("tm", 1, 0, Edx, 29), ("ia64", 1, 0, Edx, 30), ("pbe", 1, 0, Edx, 31),
    // CPUID.01H:ECX
    ("pni", 1, 0, Ecx, 0), ("pclmulqdq", 1, 0, Ecx, 1), ("dtes64", 1, 0, Ecx, 2),
    ("monitor", 1, 0, Ecx, 3), ("ds-cpl", 1, 0, Ecx, 4), ("vmx", 1, 0, Ecx, 5),
    ("smx", 1, 0, Ecx, 6), ("est", 1, 0, Ecx, 7), ("tm2", 1, 0, Ecx, 8), ("ssse3", 1, 0, Ecx, 9),
    ("cid", 1, 0, Ecx, 10), ("fma", 1, 0, Ecx, 12), ("cx16", 1, 0, Ecx, 13),
    ("xtpr", 1, 0, Ecx, 14), ("pdcm", 1, 0, Ecx, 15), ("pcid", 1, 0, Ecx, 17),
    ("dca", 1, 0, Ecx, 18), ("sse4-1", 1, 0, Ecx, 19), ("sse4-2", 1, 0, Ecx, 20),
    ("x2apic", 1, 0, Ecx, 21), ("movbe", 1, 0, Ecx, 22), ("popcnt", 1, 0, Ecx, 23),
    ("tsc-deadline", 1, 0, Ecx, 24), ("aes", 1, 0, Ecx, 25), ("xsave", 1, 0, Ecx, 26),
    ("avx", 1, 0, Ecx, 28), ("f16c", 1, 0, Ecx, 29), ("rdrand", 1, 0, Ecx, 30),
    ("hypervisor", 1, 0, Ecx, 31),
    // CPUID.07H.0:EBX
    ("fsgsbase", 7, 0, Ebx, 0), ("tsc-adjust", 7, 0, Ebx, 1), ("sgx", 7, 0, Ebx, 2),
    ("bmi1", 7, 0, Ebx, 3), ("hle", 7, 0, Ebx, 4), ("avx2", 7, 0, Ebx, 5), ("smep", 7, 0, Ebx, 7),
    ("bmi2", 7, 0, Ebx, 8), ("erms", 7, 0, Ebx, 9), ("invpcid", 7, 0, Ebx, 10),
    ("rtm", 7, 0, Ebx, 11), ("mpx", 7, 0, Ebx, 14), ("avx512f", 7, 0, Ebx, 16),
    ("avx512dq", 7, 0, Ebx, 17), ("rdseed", 7, 0, Ebx, 18), ("adx", 7, 0, Ebx, 19),
    ("smap", 7, 0, Ebx, 20), ("avx512ifma", 7, 0, Ebx, 21), ("clflushopt", 7, 0, Ebx, 23),
    ("clwb", 7, 0, Ebx, 24), ("intel-pt", 7, 0, Ebx, 25), ("avx512pf", 7, 0, Ebx, 26),
    ("avx512er", 7, 0, Ebx, 27), ("avx512cd", 7, 0, Ebx, 28), ("sha-ni", 7, 0, Ebx, 29),
    ("avx512bw", 7, 0, Ebx, 30), ("avx512vl", 7, 0, Ebx, 31),
    // CPUID.07H.0:ECX
    ("avx512vbmi", 7, 0, Ecx, 1), ("umip", 7, 0, Ecx, 2), ("pku", 7, 0, Ecx, 3),
    ("waitpkg", 7, 0, Ecx, 5), ("avx512vbmi2", 7, 0, Ecx, 6), ("gfni", 7, 0, Ecx, 8),
    ("vaes", 7, 0, Ecx, 9), ("vpclmulqdq", 7, 0, Ecx, 10), ("avx512vnni", 7, 0, Ecx, 11),
    ("avx512bitalg", 7, 0, Ecx, 12), ("avx512-vpopcntdq", 7, 0, Ecx, 14), ("la57", 7, 0, Ecx, 16),
    ("rdpid", 7, 0, Ecx, 22), ("cldemote", 7, 0, Ecx, 25), ("movdiri", 7, 0, Ecx, 27),
    ("movdir64b", 7, 0, Ecx, 28), ("pks", 7, 0, Ecx, 31),
    // CPUID.07H.0:EDX
    ("avx512-4vnniw", 7, 0, Edx, 2), ("avx512-4fmaps", 7, 0, Edx, 3), ("fsrm", 7, 0, Edx, 4),
    ("avx512-vp2intersect", 7, 0, Edx, 8), ("md-clear", 7, 0, Edx, 10),
    ("serialize", 7, 0, Edx, 14), ("tsx-ldtrk", 7, 0, Edx, 16), ("amx-bf16", 7, 0, Edx, 22),
    ("avx512-fp16", 7, 0, Edx, 23), ("amx-tile", 7, 0, Edx, 24), ("amx-int8", 7, 0, Edx, 25),
    ("spec-ctrl", 7, 0, Edx, 26), ("stibp", 7, 0, Edx, 27), ("flush-l1d", 7, 0, Edx, 28),
    ("arch-capabilities", 7, 0, Edx, 29), ("core-capability", 7, 0, Edx, 30),
    ("ssbd", 7, 0, Edx, 31),
    // CPUID.0DH.1:EAX
    ("xsaveopt", 0xD, 1, Eax, 0), ("xsavec", 0xD, 1, Eax, 1), ("xgetbv1", 0xD, 1, Eax, 2),
    ("xsaves", 0xD, 1, Eax, 3),
    // CPUID.80000001H:EDX
    ("syscall", 0x8000_0001, 0, Edx, 11), ("nx", 0x8000_0001, 0, Edx, 20),
    ("mmxext", 0x8000_0001, 0, Edx, 22), ("fxsr-opt", 0x8000_0001, 0, Edx, 25),
    ("pdpe1gb", 0x8000_0001, 0, Edx, 26), ("rdtscp", 0x8000_0001, 0, Edx, 27),
    ("lm", 0x8000_0001, 0, Edx, 29), ("3dnowext", 0x8000_0001, 0, Edx, 30),
    ("3dnow", 0x8000_0001, 0, Edx, 31),
    // CPUID.80000001H:ECX
    ("lahf-lm", 0x8000_0001, 0, Ecx, 0), ("cmp-legacy", 0x8000_0001, 0, Ecx, 1),
    ("svm", 0x8000_0001, 0, Ecx, 2), ("extapic", 0x8000_0001, 0, Ecx, 3),
    ("cr8legacy", 0x8000_0001, 0, Ecx, 4), ("abm", 0x8000_0001, 0, Ecx, 5),
    ("sse4a", 0x8000_0001, 0, Ecx, 6), ("misalignsse", 0x8000_0001, 0, Ecx, 7),
    ("3dnowprefetch", 0x8000_0001, 0, Ecx, 8), ("osvw", 0x8000_0001, 0, Ecx, 9),
    ("ibs", 0x8000_0001, 0, Ecx, 10), ("xop", 0x8000_0001, 0, Ecx, 11),
    ("skinit", 0x8000_0001, 0, Ecx, 12), ("wdt", 0x8000_0001, 0, Ecx, 13),
    ("lwp", 0x8000_0001, 0, Ecx, 15), ("fma4", 0x8000_0001, 0, Ecx, 16),
    ("tce", 0x8000_0001, 0, Ecx, 17), ("nodeid-msr", 0x8000_0001, 0, Ecx, 19),
    ("tbm", 0x8000_0001, 0, Ecx, 21), ("topoext", 0x8000_0001, 0, Ecx, 22),
    ("perfctr-core", 0x8000_0001, 0, Ecx, 23), ("perfctr-nb", 0x8000_0001, 0, Ecx, 24),
    // CPUID.40000001H:EAX, KVM's paravirtual features
    ("kvmclock", 0x4000_0001, 0, Eax, 3), ("kvm-nopiodelay", 0x4000_0001, 0, Eax, 1),
    ("kvm-mmu", 0x4000_0001, 0, Eax, 2), ("kvm-asyncpf", 0x4000_0001, 0, Eax, 4),
    ("kvm-steal-time", 0x4000_0001, 0, Eax, 5), ("kvm-pv-eoi", 0x4000_0001, 0, Eax, 6),
    ("kvm-pv-unhalt", 0x4000_0001, 0, Eax, 7), ("kvm-pv-tlb-flush", 0x4000_0001, 0, Eax, 9),
    ("kvm-asyncpf-vmexit", 0x4000_0001, 0, Eax, 10), ("kvm-pv-ipi", 0x4000_0001, 0, Eax, 11),
    ("kvm-poll-control", 0x4000_0001, 0, Eax, 12), ("kvm-pv-sched-yield", 0x4000_0001, 0, Eax, 13),
    ("kvm-asyncpf-int", 0x4000_0001, 0, Eax, 14), ("kvm-msi-ext-dest-id", 0x4000_0001, 0, Eax, 15),
    ("kvmclock-stable-bit", 0x4000_0001, 0, Eax, 24),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn models_and_flags_parse_as_qemu_spells_them() {
        let c = parse_cpu("qemu64,+x2apic,-pcid,avx2=off,sse4_1=on,vendor=GenuineIntel").unwrap();
        assert_eq!(c.model, CpuModel::Qemu64);
        let flags: Vec<(&str, bool)> = c.flags.iter().map(|(f, on)| (f.name, *on)).collect();
        assert_eq!(
            flags,
            [
                ("x2apic", true),
                ("pcid", false),
                ("avx2", false),
                ("sse4-1", true)
            ]
        );
        assert_eq!(&c.vendor.unwrap(), b"GenuineIntel");
        assert_eq!(parse_cpu("host").unwrap(), CpuConfig::default());
        assert_eq!(parse_cpu("max").unwrap().model, CpuModel::Max);
        assert_eq!(parse_cpu("kvm64,lm").unwrap().flags[0].0.name, "lm");
    }

    #[test]
    fn an_unknown_model_flag_or_value_is_one_clear_error() {
        for (arg, named) in [
            ("pentium", "pentium"),
            ("host,+frobnicate", "+frobnicate"),
            ("host,avx2=maybe", "avx2=maybe"),
            ("host,vendor=Intel", "vendor=Intel"),
        ] {
            let e = parse_cpu(arg).unwrap_err().to_string();
            assert!(e.contains(named), "{arg}: {e}");
        }
    }

    #[test]
    fn overcommit_takes_cpu_pm_and_refuses_memory_locking() {
        assert!(parse_overcommit("cpu-pm=on", false).unwrap());
        assert!(!parse_overcommit("mem-lock=off,cpu-pm=off", true).unwrap());
        assert!(parse_overcommit("mem-lock=off", true).unwrap());
        let e = parse_overcommit("mem-lock=on", false).unwrap_err().to_string();
        assert!(e.contains("mem-lock=on"), "{e}");
        let e = parse_overcommit("cpu-pm=maybe", false).unwrap_err().to_string();
        assert!(e.contains("-overcommit") && e.contains("cpu-pm=maybe"), "{e}");
        assert!(parse_overcommit("overcommit-everything", false).is_err());
    }

    #[test]
    fn features_are_named_as_qemu_reports_them() {
        let hle = feature("hle").unwrap();
        assert_eq!(hle.to_string(), "CPUID.07H:EBX.hle [bit 4]");
        assert_eq!(feature("lahf_lm"), feature("lahf-lm"));
        assert_eq!(feature("sse3").unwrap().name, "pni");
    }

    #[test]
    fn no_two_names_share_a_bit() {
        for (i, a) in FEATURES.iter().enumerate() {
            for b in &FEATURES[i + 1..] {
                assert!(a.0 != b.0, "{} twice", a.0);
                assert!(
                    (a.1, a.2, a.3, a.4) != (b.1, b.2, b.3, b.4),
                    "{} and {}",
                    a.0,
                    b.0
                );
            }
        }
    }
}
