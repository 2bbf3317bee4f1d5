//! Whether, and where, the firmware reports its boot milestones (see
//! `minnow_bootproto::milestone`): only when the VMM serves `opt/org.minnow/milestones`. By
//! default the ROM writes to no I/O port a user's device could sit on.
use crate::fw_cfg::FwCfg;
use minnow_bootproto::fw_cfg::file;

/// The port the VMM asked for, or `None` (no file, or one that is not a 2-byte port).
pub fn requested_port(cfg: &mut dyn FwCfg) -> Option<u16> {
    let f = cfg.file(file::MINNOW_MILESTONES)?;
    if f.size != 2 {
        return None;
    }
    let mut port = [0u8; 2];
    cfg.read_item(f.key, &mut port).ok()?;
    Some(u16::from_le_bytes(port))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fakes::FakeFwCfg;

    #[test]
    fn milestones_only_when_the_vmm_names_a_port() {
        assert_eq!(requested_port(&mut FakeFwCfg::new()), None);
        let mut asked = FakeFwCfg::new().add_file(file::MINNOW_MILESTONES, 0x3F0u16.to_le_bytes());
        assert_eq!(requested_port(&mut asked), Some(0x3F0));
        let mut garbled = FakeFwCfg::new().add_file(file::MINNOW_MILESTONES, [0xF4]);
        assert_eq!(requested_port(&mut garbled), None);
    }
}
