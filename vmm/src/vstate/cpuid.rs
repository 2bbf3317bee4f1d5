//! The CPUID a vCPU sees: what KVM supports, with the hypervisor bit set (without it Linux ignores
//! the KVM leaves and gets no kvmclock) and each vCPU's own APIC id and topology.
use kvm_bindings::CpuId;

const LEAF_FEATURES: u32 = 1;
const LEAF_EXTENDED_TOPOLOGY: u32 = 0xB;
/// V2 extended topology, which KVM fills from the host CPU it ran on.
const LEAF_EXTENDED_TOPOLOGY_V2: u32 = 0x1F;
const ECX_HYPERVISOR: u32 = 1 << 31;
const ECX_TSC_DEADLINE: u32 = 1 << 24;
const EBX_APIC_ID_SHIFT: u32 = 24;
const EBX_LOGICAL_COUNT_SHIFT: u32 = 16;
const EDX_HTT: u32 = 1 << 28;

/// Adjusts KVM's supported CPUID for vCPU `id` of `count`.
pub fn for_vcpu(supported: &CpuId, id: u8, count: u8) -> CpuId {
    let mut cpuid = supported.clone();
    for entry in cpuid.as_mut_slice() {
        match entry.function {
            LEAF_FEATURES => {
                entry.ecx |= ECX_HYPERVISOR;
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
pub fn add_emulated(supported: &mut CpuId, tsc_deadline: bool) {
    for entry in supported.as_mut_slice() {
        if entry.function == LEAF_FEATURES && tsc_deadline {
            entry.ecx |= ECX_TSC_DEADLINE;
        }
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
        let supported = CpuId::from_entries(&entries).unwrap();
        let c = for_vcpu(&supported, 3, 4);
        let leaf1 = c.as_slice()[0];
        assert_ne!(leaf1.ecx & ECX_HYPERVISOR, 0);
        assert_eq!(leaf1.ebx >> 24, 3);
        assert_eq!((leaf1.ebx >> 16) & 0xFF, 4);
        assert_eq!(leaf1.ebx & 0xFFFF, 0x0800);
        assert_eq!((c.as_slice()[1].edx, c.as_slice()[2].edx), (3, 3));
        let mut with_deadline = supported.clone();
        add_emulated(&mut with_deadline, true);
        assert_ne!(with_deadline.as_slice()[0].ecx & ECX_TSC_DEADLINE, 0);
        let sig = signature(&supported, 2);
        assert_eq!(sig.0, leaf1.eax);
        assert_ne!(sig.1 & EDX_HTT, 0);
    }
}
