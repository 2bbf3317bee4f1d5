//! QEMU's generic 64-bit CPU models as QEMU gives them to a KVM guest: the model's features
//! (target/i386/cpu.c's `builtin_x86_defs`) plus what QEMU switches on for every KVM guest
//! (x2apic, the hypervisor bit, kvmclock and its paravirtual companions), each only where KVM
//! supports it. As in QEMU under KVM, the vendor stays the host's; family, model and stepping are
//! the model's.
use crate::config::cpu::{CpuModel, Reg};

/// One CPUID register a model defines: (leaf, sub-leaf, register, the bits it may show).
pub type ModelWord = (u32, u32, Reg, u32);

pub struct ModelDef {
    /// CPUID.01H:EAX: stepping, model and family.
    pub signature: u32,
    /// The highest basic leaf (CPUID.00H:EAX).
    pub level: u32,
    /// The highest extended leaf (CPUID.80000000H:EAX).
    pub xlevel: u32,
    /// The brand string of leaves 80000002H to 80000004H.
    pub model_id: &'static str,
    pub words: &'static [ModelWord],
}

/// CPUID.01H:EDX of QEMU's `PPRO_FEATURES`, with MTRR, CLFLUSH, MCA and PSE36 as both models add:
/// fpu de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov pat pse36 clflush mmx fxsr sse sse2.
const PPRO_PLUS: u32 = 0x078B_FBFD;
const VME: u32 = 1 << 1;
/// pni (sse3), cx16, and the x2apic and hypervisor bits QEMU adds for KVM guests.
const LEAF1_ECX: u32 = 1 | (1 << 13) | (1 << 21) | (1 << 31);
/// syscall, nx, lm.
const EXT_EDX: u32 = (1 << 11) | (1 << 20) | (1 << 29);
/// lahf-lm (qemu64's svm is one of the bits QEMU switches off for KVM guests).
const EXT_ECX_QEMU64: u32 = 1;
/// kvmclock (both bits), kvm-nopiodelay, kvm-asyncpf, kvm-steal-time, kvm-pv-eoi and
/// kvmclock-stable-bit: QEMU's defaults for a KVM guest.
const KVM_FEATURES: u32 = 1 | (1 << 1) | (1 << 3) | (1 << 4) | (1 << 5) | (1 << 6) | (1 << 24);

/// Every feature register KVM fills that a model defines: the model's bits, or none (leaf 7 and
/// its sub-leaves, XSAVE's extensions, 80000007H's invariant TSC, 80000008H's speculation
/// controls: neither model has any).
const fn words(leaf1_edx: u32, ext_ecx: u32) -> [ModelWord; 16] {
    [
        (1, 0, Reg::Edx, leaf1_edx),
        (1, 0, Reg::Ecx, LEAF1_ECX),
        (7, 0, Reg::Eax, 0),
        (7, 0, Reg::Ebx, 0),
        (7, 0, Reg::Ecx, 0),
        (7, 0, Reg::Edx, 0),
        (7, 1, Reg::Eax, 0),
        (7, 1, Reg::Ebx, 0),
        (7, 1, Reg::Ecx, 0),
        (7, 1, Reg::Edx, 0),
        (0xD, 1, Reg::Eax, 0),
        (0x8000_0001, 0, Reg::Edx, EXT_EDX),
        (0x8000_0001, 0, Reg::Ecx, ext_ecx),
        (0x8000_0007, 0, Reg::Edx, 0),
        (0x8000_0008, 0, Reg::Ebx, 0),
        (0x4000_0001, 0, Reg::Eax, KVM_FEATURES),
    ]
}

static QEMU64_WORDS: [ModelWord; 16] = words(PPRO_PLUS, EXT_ECX_QEMU64);
static KVM64_WORDS: [ModelWord; 16] = words(PPRO_PLUS | VME, 0);

/// `family`, `model` and `stepping` as CPUID.01H:EAX encodes them.
const fn signature(family: u32, model: u32, stepping: u32) -> u32 {
    let (family, ext_family) = if family > 0xF {
        (0xF, family - 0xF)
    } else {
        (family, 0)
    };
    stepping | ((model & 0xF) << 4) | (family << 8) | ((model >> 4) << 16) | (ext_family << 20)
}

/// The definition of `model`; `None` for `host` and `max`, which show all KVM supports.
pub fn definition(model: CpuModel) -> Option<ModelDef> {
    match model {
        CpuModel::Host | CpuModel::Max => None,
        CpuModel::Qemu64 => Some(ModelDef {
            // QEMU 6.1 and later (microvm has no older machine types to keep 6/6/3).
            signature: signature(15, 107, 1),
            level: 0xD,
            xlevel: 0x8000_000A,
            model_id: "QEMU Virtual CPU version 2.5+",
            words: &QEMU64_WORDS,
        }),
        CpuModel::Kvm64 => Some(ModelDef {
            signature: signature(15, 6, 1),
            level: 0xD,
            xlevel: 0x8000_0008,
            model_id: "Common KVM processor",
            words: &KVM64_WORDS,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::cpu::features;

    fn names(word: (u32, u32, Reg), mask: u32) -> Vec<&'static str> {
        (0..32)
            .filter(|b| mask & (1 << b) != 0)
            .filter_map(|bit| {
                let (leaf, index, reg) = word;
                features()
                    .find(|f| (f.word.leaf, f.word.index, f.word.reg, f.bit) == (leaf, index, reg, bit))
                    .map(|f| f.name)
            })
            .collect()
    }

    /// The bits `def` shows in sub-leaf 0's `reg` of `leaf`.
    fn mask(def: &ModelDef, leaf: u32, reg: Reg) -> u32 {
        def.words
            .iter()
            .find(|w| (w.0, w.1, w.2) == (leaf, 0, reg))
            .map(|w| w.3)
            .unwrap()
    }

    #[test]
    fn qemu64_has_qemus_features_and_signature() {
        let def = definition(CpuModel::Qemu64).unwrap();
        assert_eq!(def.signature, 0x0006_0FB1, "what QEMU 7.2's microvm shows");
        let edx = names((1, 0, Reg::Edx), mask(&def, 1, Reg::Edx));
        let want =
            "fpu de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov pat pse36 clflush mmx fxsr sse sse2";
        assert_eq!(edx.join(" "), want);
        assert_eq!(
            names((1, 0, Reg::Ecx), mask(&def, 1, Reg::Ecx)),
            ["pni", "cx16", "x2apic", "hypervisor"]
        );
        assert_eq!(
            names((0x8000_0001, 0, Reg::Edx), mask(&def, 0x8000_0001, Reg::Edx)),
            ["syscall", "nx", "lm"]
        );
        assert_eq!(
            names((0x8000_0001, 0, Reg::Ecx), mask(&def, 0x8000_0001, Reg::Ecx)),
            ["lahf-lm"]
        );
    }

    #[test]
    fn kvm64_adds_vme_and_is_a_family_15_cpu() {
        let def = definition(CpuModel::Kvm64).unwrap();
        assert_eq!(def.signature, 0xF61);
        assert!(names((1, 0, Reg::Edx), mask(&def, 1, Reg::Edx)).contains(&"vme"));
        assert_eq!(mask(&def, 0x8000_0001, Reg::Ecx), 0);
        assert!(definition(CpuModel::Host).is_none());
        assert_eq!(signature(0x19, 0x21, 0), 0x00A2_0F10);
    }
}
