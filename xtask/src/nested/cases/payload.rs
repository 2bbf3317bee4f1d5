//! The boot conformance payloads through every loader that takes them.
use super::*;

fn payload_case(loader: Loader, route: Route, payload: Payload, acpi: bool, smp: u32) -> Case {
    let name = format!(
        "payload-{}-{}-{}-acpi{}-smp{smp}",
        loader_name(loader),
        match route {
            Route::Kernel => "kernel",
            Route::FwCfg => "fwcfg",
        },
        payload.file().replace('.', "_"),
        on_off(acpi),
    );
    let cmdline = payload_cmdline(&name);
    let kernel_arg = format!("{}/{}", paths::PAYLOAD_DIR, payload.file());
    let mut args = machine_args(acpi, true, true, smp);
    args.extend(bios_args(loader));
    args.extend(["-device".to_string(), DEBUG_EXIT_DEVICE.to_string()]);
    match route {
        Route::Kernel => args.extend(
            [
                "-kernel",
                &kernel_arg,
                "-initrd",
                paths::PAYLOAD_INITRD,
                "-append",
                &cmdline,
            ]
            .map(String::from),
        ),
        Route::FwCfg => {
            for (item, value) in [
                ("kernel", format!("file={kernel_arg}")),
                ("initrd", format!("file={}", paths::PAYLOAD_INITRD)),
                ("cmdline", format!("string={}", cmdline.replace(',', ",,"))),
            ] {
                args.push("-fw_cfg".into());
                args.push(format!("name=opt/org.minnow/{item},{value}"));
            }
        }
    }
    Case::new(
        name,
        paths::MINNOW,
        args,
        Expect::Payload {
            loader,
            route,
            payload,
            smp,
            acpi,
            kernel_arg,
            cmdline,
        },
    )
}

/// Every payload through every loader that supports it, with ACPI (one CPU) and without (two,
/// so the MP table's CPU count is checked).
pub fn payload_cases() -> Vec<Case> {
    payload_matrix().0
}

/// The payload combinations left out, each with why (the run prints them).
pub fn payload_not_supported() -> Vec<(String, &'static str)> {
    payload_matrix().1
}

fn payload_matrix() -> (Vec<Case>, Vec<(String, &'static str)>) {
    let mut cases = Vec::new();
    let mut skipped = Vec::new();
    for loader in [Loader::MinnowRom, Loader::Qboot, Loader::SeaBios, Loader::Direct] {
        for route in [Route::Kernel, Route::FwCfg] {
            for payload in Payload::ALL {
                // The fw_cfg route is for what -kernel cannot carry: multiboot 2.
                if route == Route::FwCfg && payload != Payload::Multiboot2 {
                    continue;
                }
                if let Some(why) = not_supported(loader, route, payload) {
                    let route = if route == Route::Kernel { "kernel" } else { "fwcfg" };
                    skipped.push((
                        format!("payload-{}-{route}-{}", loader_name(loader), payload.file()),
                        why,
                    ));
                    continue;
                }
                cases.push(payload_case(loader, route, payload, true, 1));
                cases.push(payload_case(loader, route, payload, false, 2));
            }
        }
    }
    (cases, skipped)
}
