//! The CPUID a vCPU sees: what KVM supports, with the hypervisor bit set (without it Linux ignores
//! the KVM leaves and gets no kvmclock), narrowed to `-cpu`'s model and flags, and each vCPU's
//! own APIC id and topology.
use super::cpu_models;
use crate::config::cpu::{CpuConfig, Feature, Reg};
use kvm_bindings::{kvm_cpuid_entry2, CpuId, KVM_CPUID_FLAG_SIGNIFCANT_INDEX};

const LEAF_FEATURES: u32 = 1;
const LEAF_EXTENDED_TOPOLOGY: u32 = 0xB;
/// V2 extended topology, which KVM fills from the host CPU it ran on.
const LEAF_EXTENDED_TOPOLOGY_V2: u32 = 0x1F;
const ECX_HYPERVISOR: u32 = 1 << 31;
const ECX_TSC_DEADLINE: u32 = 1 << 24;
const ECX_MONITOR: u32 = 1 << 3;
const EBX_APIC_ID_SHIFT: u32 = 24;
const EBX_LOGICAL_COUNT_SHIFT: u32 = 16;
const EDX_HTT: u32 = 1 << 28;

/// Adjusts KVM's supported CPUID for vCPU `id` of `count`.
pub fn for_vcpu(supported: &CpuId, id: u8, count: u8) -> CpuId {
    let mut cpuid = supported.clone();
    for entry in cpuid.as_mut_slice() {
        match entry.function {
            LEAF_FEATURES => {
                entry.ebx = (entry.ebx & 0x0000_FFFF)
                    | (u32::from(id) << EBX_APIC_ID_SHIFT)
                    | (u32::from(count) << EBX_LOGICAL_COUNT_SHIFT);
                if count > 1 {
                    entry.edx |= EDX_HTT;
                }
            }
            // x2APIC id of this vCPU, in every sub-leaf (KVM reports the host CPU's in 0x1F,
            // which differs from run to run).
            LEAF_EXTENDED_TOPOLOGY | LEAF_EXTENDED_TOPOLOGY_V2 => entry.edx = u32::from(id),
            _ => {}
        }
    }
    cpuid
}

/// Adds what KVM emulates but leaves out of its supported CPUID: the local APIC's TSC-deadline
/// timer mode, when `tsc_deadline` (KVM_CAP_TSC_DEADLINE_TIMER). With it a guest arms its timer
/// from the TSC and needs no PIT to calibrate it (`pic=off` has none).
/// Also sets the hypervisor bit, which KVM leaves to the VMM, and MONITOR/MWAIT when `mwait`:
/// the guest runs MWAIT itself (`-overcommit cpu-pm=on`), as QEMU shows it then.
pub fn add_emulated(supported: &mut CpuId, tsc_deadline: bool, mwait: bool) {
    for entry in supported.as_mut_slice() {
        if entry.function == LEAF_FEATURES {
            entry.ecx |= ECX_HYPERVISOR;
            if tsc_deadline {
                entry.ecx |= ECX_TSC_DEADLINE;
            }
            if mwait {
                entry.ecx |= ECX_MONITOR;
            }
        }
    }
}

/// Narrows `supported` (after [`add_emulated`]) to `-cpu`'s model, vendor and flags. Returns the
/// flags asked for that KVM does not support: they stay off, and the caller warns as QEMU does.
pub fn apply(supported: &mut CpuId, cpu: &CpuConfig) -> Vec<Feature> {
    let kvm = supported.clone();
    if let Some(def) = cpu_models::definition(cpu.model) {
        for &(leaf, index, reg, mask) in def.words {
            if let Some(e) = entry(supported, leaf, index) {
                *register(e, reg) &= mask;
            }
        }
        set_model(supported, &def);
    }
    if let Some(vendor) = cpu.vendor {
        set_vendor(supported, &vendor);
    }
    let mut unsupported = Vec::new();
    for &(f, on) in &cpu.flags {
        let offered = entry_ref(&kvm, f.word.leaf, f.word.index).map_or(0, |e| read(e, f.word.reg));
        let Some(e) = entry(supported, f.word.leaf, f.word.index) else {
            if on {
                unsupported.push(f);
            }
            continue;
        };
        let r = register(e, f.word.reg);
        match on {
            true if offered & f.bits == 0 => unsupported.push(f),
            true => *r |= offered & f.bits,
            false => *r &= !f.bits,
        }
    }
    if cpu_models::definition(cpu.model).is_some() {
        alias_amd_features(supported);
    }
    unsupported
}

/// On an AMD CPU, leaf 80000001H's EDX repeats leaf 1's FPU-to-PAT and MMX/FXSR bits: QEMU
/// copies them when its model says AMD (for a model; `host` has KVM's values already).
fn alias_amd_features(cpuid: &mut CpuId) {
    const AMD_ALIASES: u32 = 0x0183_F3FF;
    const AUTHENTIC_AMD: (u32, u32, u32) = (0x6874_7541, 0x6974_6E65, 0x444D_4163);
    let amd = entry_ref(cpuid, 0, 0).is_some_and(|e| (e.ebx, e.edx, e.ecx) == AUTHENTIC_AMD);
    let leaf1 = entry_ref(cpuid, LEAF_FEATURES, 0).map_or(0, |e| e.edx);
    if let (true, Some(ext)) = (amd, entry(cpuid, 0x8000_0001, 0)) {
        ext.edx = (ext.edx & !AMD_ALIASES) | (leaf1 & AMD_ALIASES);
    }
}

fn set_model(cpuid: &mut CpuId, def: &cpu_models::ModelDef) {
    // The leaves past the model's last ones are gone, as they are from QEMU's model (KVM would
    // answer any leaf still in the table, whatever leaf 0 says).
    let reached = |f: u32| {
        f <= def.level || (0x4000_0000..0x8000_0000).contains(&f) || (0x8000_0000..=def.xlevel).contains(&f)
    };
    let kept: Vec<kvm_cpuid_entry2> = cpuid
        .as_slice()
        .iter()
        .filter(|e| reached(e.function))
        .copied()
        .collect();
    if let Ok(narrowed) = CpuId::from_entries(&kept) {
        *cpuid = narrowed;
    }
    let limit = |e: Option<&mut kvm_cpuid_entry2>, max: u32| {
        if let Some(e) = e {
            e.eax = e.eax.min(max);
        }
    };
    limit(entry(cpuid, 0, 0), def.level);
    limit(entry(cpuid, 0x8000_0000, 0), def.xlevel);
    if let Some(e) = entry(cpuid, LEAF_FEATURES, 0) {
        e.eax = def.signature;
    }
    let mut brand = [0u8; 48];
    brand[..def.model_id.len()].copy_from_slice(def.model_id.as_bytes());
    for (i, chunk) in brand.chunks(16).enumerate() {
        if let Some(e) = entry(cpuid, 0x8000_0002 + i as u32, 0) {
            let word = |n| le_word(chunk, n);
            (e.eax, e.ebx, e.ecx, e.edx) = (word(0), word(4), word(8), word(12));
        }
    }
}

/// The vendor string of leaf 0 (EBX, EDX, ECX) and of leaf 80000000H, as QEMU sets both.
fn set_vendor(cpuid: &mut CpuId, vendor: &[u8; 12]) {
    let word = |n| le_word(vendor, n);
    for leaf in [0, 0x8000_0000] {
        if let Some(e) = entry(cpuid, leaf, 0) {
            (e.ebx, e.edx, e.ecx) = (word(0), word(4), word(8));
        }
    }
}

/// The entry for `leaf`/`index`; a leaf without sub-leaves matches any index.
fn entry(cpuid: &mut CpuId, leaf: u32, index: u32) -> Option<&mut kvm_cpuid_entry2> {
    cpuid.as_mut_slice().iter_mut().find(|e| is(e, leaf, index))
}

fn entry_ref(cpuid: &CpuId, leaf: u32, index: u32) -> Option<&kvm_cpuid_entry2> {
    cpuid.as_slice().iter().find(|e| is(e, leaf, index))
}

/// Whether `e` answers `leaf`/`index`.
fn is(e: &kvm_cpuid_entry2, leaf: u32, index: u32) -> bool {
    e.function == leaf && (e.index == index || e.flags & KVM_CPUID_FLAG_SIGNIFCANT_INDEX == 0)
}

/// The little-endian word at `n` in `bytes` (a brand or vendor string, 4 bytes per register).
fn le_word(bytes: &[u8], n: usize) -> u32 {
    u32::from_le_bytes([bytes[n], bytes[n + 1], bytes[n + 2], bytes[n + 3]])
}

fn register(e: &mut kvm_cpuid_entry2, reg: Reg) -> &mut u32 {
    match reg {
        Reg::Eax => &mut e.eax,
        Reg::Ebx => &mut e.ebx,
        Reg::Ecx => &mut e.ecx,
        Reg::Edx => &mut e.edx,
    }
}

fn read(e: &kvm_cpuid_entry2, reg: Reg) -> u32 {
    match reg {
        Reg::Eax => e.eax,
        Reg::Ebx => e.ebx,
        Reg::Ecx => e.ecx,
        Reg::Edx => e.edx,
    }
}

/// CPUID(1) EAX (signature) and EDX (features) as the vCPUs of a `count`-vCPU machine see them:
/// what firmware copies into the MP table's processor entries.
pub fn signature(supported: &CpuId, count: u8) -> (u32, u32) {
    for_vcpu(supported, 0, count)
        .as_slice()
        .iter()
        .find(|e| e.function == LEAF_FEATURES)
        .map_or((0, 0), |e| (e.eax, e.edx))
}

#[cfg(test)]
mod tests {
    use super::*;
    use kvm_bindings::kvm_cpuid_entry2;

    #[test]
    fn each_vcpu_gets_the_hypervisor_bit_and_its_apic_id() {
        let entries = [
            kvm_cpuid_entry2 {
                function: 1,
                ebx: 0xFF00_0800,
                ..Default::default()
            },
            kvm_cpuid_entry2 {
                function: 0xB,
                index: 0,
                ..Default::default()
            },
            kvm_cpuid_entry2 {
                function: 0x1F,
                index: 1,
                edx: 17, // the host CPU KVM ran on
                ..Default::default()
            },
        ];
        let mut supported = CpuId::from_entries(&entries).unwrap();
        add_emulated(&mut supported, false, false);
        let c = for_vcpu(&supported, 3, 4);
        let leaf1 = c.as_slice()[0];
        assert_ne!(leaf1.ecx & ECX_HYPERVISOR, 0);
        assert_eq!(leaf1.ebx >> 24, 3);
        assert_eq!((leaf1.ebx >> 16) & 0xFF, 4);
        assert_eq!(leaf1.ebx & 0xFFFF, 0x0800);
        assert_eq!((c.as_slice()[1].edx, c.as_slice()[2].edx), (3, 3));
        let mut with_deadline = supported.clone();
        add_emulated(&mut with_deadline, true, true);
        assert_ne!(with_deadline.as_slice()[0].ecx & ECX_MONITOR, 0);
        assert_ne!(with_deadline.as_slice()[0].ecx & ECX_TSC_DEADLINE, 0);
        let sig = signature(&supported, 2);
        assert_eq!(sig.0, leaf1.eax);
        assert_ne!(sig.1 & EDX_HTT, 0);
    }

    /// A host with x2APIC, AVX2 and SVM, as KVM might report it.
    fn kvm() -> CpuId {
        let leaf = |function, index, flags, eax, ebx, ecx, edx| kvm_cpuid_entry2 {
            function,
            index,
            flags,
            eax,
            ebx,
            ecx,
            edx,
            ..Default::default()
        };
        let entries = [
            leaf(0, 0, 0, 0x10, 0x6874_7541, 0x444D_4163, 0x6974_6E65),
            leaf(1, 0, 0, 0x00A2_0F10, 0, (1 << 21) | (1 << 28) | 1, 0x178B_FBFF),
            leaf(7, 0, KVM_CPUID_FLAG_SIGNIFCANT_INDEX, 0, 1 << 5, 0, 0),
            leaf(0x14, 0, KVM_CPUID_FLAG_SIGNIFCANT_INDEX, 1, 0, 0, 0),
            leaf(0x8000_0000, 0, 0, 0x8000_0021, 0, 0, 0),
            leaf(0x8000_0021, 0, 0, 0x45, 0, 0, 0),
            leaf(0x8000_0001, 0, 0, 0, 0, 0b101, 0x2FD3_FBFF),
            leaf(0x8000_0002, 0, 0, 1, 2, 3, 4),
        ];
        let mut cpuid = CpuId::from_entries(&entries).unwrap();
        add_emulated(&mut cpuid, true, false);
        cpuid
    }

    fn leaf(c: &CpuId, function: u32) -> kvm_cpuid_entry2 {
        *c.as_slice().iter().find(|e| e.function == function).unwrap()
    }

    #[test]
    fn flags_switch_supported_features_off_and_on_and_name_the_unsupported() {
        let mut c = kvm();
        let cpu = crate::config::cpu::parse_cpu("host,-x2apic,-avx2,+avx512f,+x2apic,-hypervisor").unwrap();
        let unsupported = apply(&mut c, &cpu);
        assert_eq!(
            unsupported.iter().map(|f| f.name).collect::<Vec<_>>(),
            ["avx512f"]
        );
        assert_ne!(leaf(&c, 1).ecx & (1 << 21), 0, "the last x2apic flag wins");
        assert_eq!(leaf(&c, 1).ecx & ECX_HYPERVISOR, 0);
        assert_eq!(leaf(&c, 7).ebx, 0);
        assert_eq!(leaf(&c, 1).eax, 0x00A2_0F10, "host keeps its signature");
    }

    #[test]
    fn qemu64_narrows_kvms_cpuid_to_the_model_and_keeps_the_host_vendor() {
        let mut c = kvm();
        let unsupported = apply(&mut c, &crate::config::cpu::parse_cpu("qemu64,-x2apic").unwrap());
        assert!(unsupported.is_empty());
        let l1 = leaf(&c, 1);
        assert_eq!(l1.eax, 0x0006_0FB1);
        assert_eq!(
            l1.ecx,
            1 | ECX_HYPERVISOR,
            "sse3 and the hypervisor bit; no x2apic, no avx"
        );
        assert_eq!(l1.edx, 0x078B_FBFD);
        assert_eq!(leaf(&c, 7).ebx, 0);
        assert_eq!(leaf(&c, 0).eax, 0xD);
        assert_eq!(leaf(&c, 0).ebx, 0x6874_7541, "Auth: the host's vendor");
        assert_eq!(leaf(&c, 0x8000_0000).eax, 0x8000_000A);
        assert_eq!(leaf(&c, 0x8000_0001).ecx, 1, "lahf-lm without svm");
        let ext_edx = leaf(&c, 0x8000_0001).edx;
        assert_eq!(
            ext_edx & 0x0183_F3FF,
            0x078B_FBFD & 0x0183_F3FF,
            "AMD's copy of leaf 1"
        );
        assert_eq!(ext_edx & !0x0183_F3FF, (1 << 11) | (1 << 20) | (1 << 29));
        let leaves: Vec<u32> = c.as_slice().iter().map(|e| e.function).collect();
        assert!(
            !leaves.contains(&0x14) && !leaves.contains(&0x8000_0021),
            "{leaves:x?}"
        );
        assert_eq!(&leaf(&c, 0x8000_0002).eax.to_le_bytes(), b"QEMU");
    }

    #[test]
    fn vendor_sets_both_vendor_leaves() {
        let mut c = kvm();
        apply(
            &mut c,
            &crate::config::cpu::parse_cpu("max,vendor=GenuineIntel").unwrap(),
        );
        for l in [0, 0x8000_0000] {
            let e = leaf(&c, l);
            let bytes: Vec<u8> = [e.ebx, e.edx, e.ecx]
                .iter()
                .flat_map(|w| w.to_le_bytes())
                .collect();
            assert_eq!(bytes, b"GenuineIntel");
        }
    }
}
