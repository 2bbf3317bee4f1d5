use super::*;
use std::sync::{Arc, Mutex};

/// 2024-02-29 13:45:56 UTC, a Thursday.
const LEAP_DAY: u64 = 1_709_214_356;
const MIDNIGHT: u64 = LEAP_DAY - (13 * 3600 + 45 * 60 + 56);
const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;
const MS: Duration = Duration::from_millis(1);
const SEC: Duration = Duration::from_secs(1);
/// Register A with the periodic interrupt off, so tests of other flags see only theirs.
const A_NO_PERIODIC: u8 = 0x20;

#[derive(Clone)]
struct FakeClock {
    start: Instant,
    utc: Duration,
    elapsed: Arc<Mutex<Duration>>,
}

impl Clock for FakeClock {
    fn now(&self) -> Instant {
        self.start + *self.elapsed.lock().unwrap()
    }
    fn utc(&self) -> Duration {
        self.utc + *self.elapsed.lock().unwrap()
    }
}

struct Rig {
    cmos: Cmos<FakeClock>,
    clock: FakeClock,
    irq: IrqLine,
}

impl Rig {
    fn at(unix_secs: u64) -> Self {
        Self::with_memory(unix_secs, 0, 0)
    }

    fn with_memory(unix_secs: u64, low_ram: u64, high_ram: u64) -> Self {
        let clock = FakeClock {
            start: Instant::now(),
            utc: Duration::from_secs(unix_secs),
            elapsed: Arc::default(),
        };
        let irq = IrqLine::new(8).unwrap();
        let probe = irq.try_clone().unwrap();
        let cmos = Cmos::with_clock(
            low_ram,
            high_ram,
            irq,
            clock.clone(),
            crate::runtime::guest_log::GuestLog::default(),
        )
        .unwrap();
        Self {
            cmos,
            clock,
            irq: probe,
        }
    }

    fn read(&mut self, index: u8) -> u8 {
        self.cmos.write(INDEX_PORT, &[index]);
        let mut b = [0];
        self.cmos.read(DATA_PORT, &mut b);
        b[0]
    }

    fn write(&mut self, index: u8, value: u8) {
        self.cmos.write(INDEX_PORT, &[index]);
        self.cmos.write(DATA_PORT, &[value]);
    }

    /// Seconds, minutes, hours, day of week, day of month, month, year, century.
    fn time(&mut self) -> [u8; 8] {
        TIME_REGISTERS.map(|index| self.read(index))
    }

    fn set_time(&mut self, time: [u8; 8]) {
        for (index, value) in TIME_REGISTERS.into_iter().zip(time) {
            self.write(index, value);
        }
    }

    fn sleep(&self, duration: Duration) {
        *self.clock.elapsed.lock().unwrap() += duration;
    }

    fn tick(&mut self) {
        let now = self.clock.now();
        self.cmos.tick(now);
    }

    fn fired(&self) -> bool {
        self.irq.event().read().is_ok()
    }

    /// How long from now until the device's next deadline.
    fn deadline_in(&self) -> Option<Duration> {
        let now = self.clock.now();
        self.cmos.next_deadline().map(|d| d.duration_since(now))
    }

    fn kicked(&self) -> bool {
        self.cmos.deadline_changed().read().is_ok()
    }
}

#[test]
fn reads_a_known_time_in_bcd_and_in_binary() {
    let mut rtc = Rig::at(LEAP_DAY);
    assert_eq!(rtc.read(REG_A), 0x26);
    assert_eq!(rtc.read(REG_B), 0x02);
    assert_eq!(rtc.time(), [0x56, 0x45, 0x13, 0x05, 0x29, 0x02, 0x24, 0x20]);
    rtc.write(REG_B, B_24_HOUR | B_BINARY);
    assert_eq!(rtc.time(), [56, 45, 13, 5, 29, 2, 24, 20]);
}

#[test]
fn twelve_hour_mode_marks_pm_in_bit_7() {
    let mut rtc = Rig::at(LEAP_DAY);
    rtc.write(REG_B, 0);
    assert_eq!(rtc.read(HOURS), 0x81, "13:45 is 1 PM");
    rtc.write(REG_B, B_BINARY);
    assert_eq!(rtc.read(HOURS), 0x81);

    let mut rtc = Rig::at(MIDNIGHT + 30 * 60);
    rtc.write(REG_B, 0);
    assert_eq!(rtc.read(HOURS), 0x12, "00:30 is 12 AM");
    let mut rtc = Rig::at(MIDNIGHT + 12 * 3600);
    rtc.write(REG_B, 0);
    assert_eq!(rtc.read(HOURS), 0x92, "noon is 12 PM");
    // A 12-hour time written by the guest is read back as such.
    rtc.write(REG_B, B_SET);
    rtc.write(HOURS, 0x87);
    rtc.write(REG_B, 0);
    assert_eq!(rtc.read(HOURS), 0x87);
    rtc.write(REG_B, B_24_HOUR);
    assert_eq!(rtc.read(HOURS), 0x19);
}

#[test]
fn uip_is_set_only_in_the_244_us_before_each_second() {
    let mut rtc = Rig::at(LEAP_DAY);
    assert_eq!(rtc.read(REG_A) & A_UIP, 0);
    rtc.sleep(Duration::from_nanos(999_755_000));
    assert_eq!(rtc.read(REG_A) & A_UIP, 0);
    rtc.sleep(Duration::from_nanos(1_000));
    assert_eq!(rtc.read(REG_A), A_DEFAULT | A_UIP);
    assert_eq!(rtc.read(SECONDS), 0x56, "the update has not happened yet");
    rtc.sleep(Duration::from_nanos(244_000));
    assert_eq!(rtc.read(REG_A) & A_UIP, 0);
    assert_eq!(rtc.read(SECONDS), 0x57);
    // A stopped clock never updates.
    rtc.sleep(Duration::from_nanos(999_800_000));
    rtc.write(REG_B, B_SET | B_24_HOUR);
    assert_eq!(rtc.read(REG_A) & A_UIP, 0);
    // Writes cannot set it.
    rtc.write(REG_A, 0xA6);
    assert_eq!(rtc.read(REG_A), 0x26);
    // Restarted, the clock keeps the phase of its second: still in the window.
    rtc.write(REG_B, B_24_HOUR);
    assert_eq!(rtc.read(REG_A), 0xA6);
}

#[test]
fn set_freezes_the_clock_and_the_guests_time_persists_and_advances() {
    let mut rtc = Rig::at(LEAP_DAY);
    rtc.write(REG_B, B_SET | B_24_HOUR);
    rtc.sleep(3 * SEC);
    assert_eq!(rtc.read(SECONDS), 0x56, "frozen");
    rtc.set_time([0x58, 0x59, 0x23, 0x06, 0x31, 0x12, 0x99, 0x19]);
    rtc.sleep(3 * SEC);
    assert_eq!(rtc.time(), [0x58, 0x59, 0x23, 0x06, 0x31, 0x12, 0x99, 0x19]);
    rtc.write(REG_B, B_24_HOUR);
    rtc.sleep(SEC);
    assert_eq!(rtc.time(), [0x59, 0x59, 0x23, 0x06, 0x31, 0x12, 0x99, 0x19]);
    rtc.sleep(SEC);
    assert_eq!(
        rtc.time(),
        [0x00, 0x00, 0x00, 0x07, 0x01, 0x01, 0x00, 0x20],
        "Saturday 2000-01-01"
    );
    rtc.sleep(Duration::from_secs(86_400));
    assert_eq!(rtc.time(), [0x00, 0x00, 0x00, 0x01, 0x02, 0x01, 0x00, 0x20]);
}

#[test]
fn a_field_written_while_running_takes_effect_and_the_rest_keep_counting() {
    let mut rtc = Rig::at(LEAP_DAY);
    rtc.sleep(500 * MS);
    rtc.write(MINUTES, 0x00);
    assert_eq!(rtc.time(), [0x56, 0x00, 0x13, 0x05, 0x29, 0x02, 0x24, 0x20]);
    rtc.sleep(500 * MS);
    assert_eq!(rtc.read(SECONDS), 0x57, "the phase of the second is kept");
    rtc.write(MONTH, 0x03);
    assert_eq!(
        rtc.time(),
        [0x57, 0x00, 0x13, 0x06, 0x29, 0x03, 0x24, 0x20],
        "Friday 29 March"
    );
}

#[test]
fn releasing_the_divider_reset_starts_the_second_half_way() {
    let mut rtc = Rig::at(LEAP_DAY);
    rtc.write(REG_A, 0x70 | 0x06);
    rtc.sleep(5 * SEC);
    assert_eq!(rtc.read(SECONDS), 0x56);
    rtc.write(SECONDS, 0x10);
    rtc.write(REG_A, A_DEFAULT);
    rtc.sleep(499 * MS);
    assert_eq!(rtc.read(SECONDS), 0x10);
    rtc.sleep(MS);
    assert_eq!(rtc.read(SECONDS), 0x11);
}

#[test]
fn reading_register_c_clears_it() {
    let mut rtc = Rig::at(LEAP_DAY);
    assert_eq!(rtc.read(REG_C), 0);
    rtc.sleep(SEC);
    // Flags are set whether or not their interrupts are enabled; IRQF only if one is.
    assert_eq!(rtc.read(REG_C), C_UF | C_PF);
    assert_eq!(rtc.read(REG_C), 0);
    rtc.write(REG_C, 0xFF);
    assert_eq!(rtc.read(REG_C), 0, "read-only");
    assert!(!rtc.fired());
}

#[test]
fn register_d_always_reports_valid_ram_and_time() {
    let mut rtc = Rig::at(LEAP_DAY);
    assert_eq!(rtc.read(REG_D), D_VRT);
    rtc.write(REG_D, 0);
    assert_eq!(rtc.read(REG_D), D_VRT);
}

#[test]
fn memory_sizes_for_512_mib() {
    let mut rtc = Rig::with_memory(LEAP_DAY, 512 * MIB, 0);
    let bytes = [0x15, 0x16, 0x17, 0x18, 0x30, 0x31, 0x34, 0x35, 0x5B, 0x5C, 0x5D].map(|i| rtc.read(i));
    // 640 KiB; 511 MiB in KiB, capped; 496 MiB in 64 KiB units; nothing above 4 GiB.
    assert_eq!(bytes, [0x80, 0x02, 0xFF, 0xFF, 0xFF, 0xFF, 0x00, 0x1F, 0, 0, 0]);
}

#[test]
fn memory_sizes_for_6_gib_split_at_3_gib() {
    let mut rtc = Rig::with_memory(LEAP_DAY, 3 * GIB, 3 * GIB);
    let bytes = [0x15, 0x16, 0x17, 0x18, 0x30, 0x31, 0x34, 0x35, 0x5B, 0x5C, 0x5D].map(|i| rtc.read(i));
    // (3 GiB - 16 MiB) / 64 KiB = 0xBF00; 3 GiB / 64 KiB = 0xC000.
    assert_eq!(
        bytes,
        [0x80, 0x02, 0xFF, 0xFF, 0xFF, 0xFF, 0x00, 0xBF, 0x00, 0xC0, 0x00]
    );
    let tiny = Rig::with_memory(LEAP_DAY, 512 * 1024, 0);
    assert_eq!(tiny.cmos.regs[0x15..0x19], [0x00, 0x02, 0, 0]);
}

#[test]
fn the_update_ended_interrupt_raises_the_line_each_second() {
    let mut rtc = Rig::at(LEAP_DAY);
    rtc.write(REG_A, A_NO_PERIODIC);
    assert_eq!(rtc.deadline_in(), None, "nothing enabled");
    rtc.write(REG_B, B_UIE | B_24_HOUR);
    assert!(rtc.kicked());
    rtc.sleep(250 * MS);
    assert_eq!(rtc.deadline_in(), Some(750 * MS));
    rtc.tick();
    assert!(!rtc.fired());
    rtc.sleep(750 * MS);
    rtc.tick();
    assert!(rtc.fired());
    assert_eq!(rtc.deadline_in(), None, "the line is up until register C is read");
    assert_eq!(rtc.read(REG_C), C_IRQF | C_UF);
    assert!(rtc.kicked());
    assert_eq!(rtc.deadline_in(), Some(SEC));
    // Setting SET clears UIE.
    rtc.write(REG_B, B_SET | B_UIE | B_24_HOUR);
    assert_eq!(rtc.read(REG_B), B_SET | B_24_HOUR);
}

#[test]
fn the_alarm_interrupt_raises_the_line_at_the_alarm_time() {
    let mut rtc = Rig::at(LEAP_DAY);
    rtc.write(REG_A, A_NO_PERIODIC);
    rtc.write(HOURS_ALARM, 0x13);
    rtc.write(MINUTES_ALARM, 0x46);
    rtc.write(SECONDS_ALARM, 0x00);
    rtc.write(REG_B, B_AIE | B_24_HOUR);
    assert_eq!(rtc.deadline_in(), Some(4 * SEC));
    rtc.sleep(3 * SEC);
    rtc.tick();
    assert!(!rtc.fired());
    rtc.sleep(SEC);
    rtc.tick();
    assert!(rtc.fired());
    assert_eq!(rtc.read(REG_C), C_IRQF | C_AF | C_UF);
    assert_eq!(
        rtc.deadline_in(),
        Some(Duration::from_secs(86_400)),
        "same time tomorrow"
    );
}

#[test]
fn alarm_values_from_0xc0_match_anything() {
    let mut rtc = Rig::at(LEAP_DAY);
    rtc.write(REG_A, A_NO_PERIODIC);
    rtc.write(REG_B, B_AIE | B_24_HOUR);
    let mut alarm_in = |h, m, s| {
        rtc.write(HOURS_ALARM, h);
        rtc.write(MINUTES_ALARM, m);
        rtc.write(SECONDS_ALARM, s);
        rtc.deadline_in().map(|d| d.as_secs())
    };
    assert_eq!(alarm_in(0xC0, 0xC0, 0xC0), Some(1), "every second");
    assert_eq!(alarm_in(0xFF, 0xFF, 0x00), Some(4), "every minute");
    assert_eq!(alarm_in(0xC0, 0xC0, 0x30), Some(34));
    assert_eq!(alarm_in(0xC0, 0x00, 0x00), Some(14 * 60 + 4), "every hour");
    assert_eq!(
        alarm_in(0x12, 0xC0, 0xC0),
        Some(22 * 3600 + 14 * 60 + 4),
        "from noon tomorrow"
    );
    assert_eq!(alarm_in(0x13, 0xC0, 0x50), Some(54));
    assert_eq!(alarm_in(0x13, 0x45, 0x56), Some(86_400), "now: tomorrow");
    assert_eq!(alarm_in(0x24, 0x00, 0x00), None, "never");
    assert_eq!(alarm_in(0x13, 0x5A, 0x00), None, "not BCD: never");
}

#[test]
fn the_periodic_interrupt_raises_the_line_at_its_rate() {
    let mut rtc = Rig::at(LEAP_DAY);
    rtc.write(REG_A, 0x2F); // 2 Hz
    rtc.write(REG_B, B_PIE | B_24_HOUR);
    assert_eq!(rtc.deadline_in(), Some(500 * MS));
    rtc.sleep(499 * MS);
    rtc.tick();
    assert!(!rtc.fired());
    rtc.sleep(MS);
    rtc.tick();
    assert!(rtc.fired());
    assert_eq!(rtc.read(REG_C), C_IRQF | C_PF);
    assert_eq!(rtc.deadline_in(), Some(500 * MS));
    // 8192 Hz: a deadline on the first nanosecond at or after the tick.
    rtc.write(REG_A, 0x23);
    assert_eq!(rtc.deadline_in(), Some(Duration::from_nanos(122_071)));
    rtc.sleep(Duration::from_nanos(122_071));
    rtc.tick();
    assert!(rtc.fired());
}

#[test]
fn an_enable_set_on_a_pending_flag_raises_the_line_at_once() {
    let mut rtc = Rig::at(LEAP_DAY);
    rtc.write(REG_A, A_NO_PERIODIC);
    rtc.sleep(SEC);
    rtc.tick();
    assert!(!rtc.fired());
    rtc.write(REG_B, B_UIE | B_24_HOUR);
    assert!(rtc.fired());
    assert_eq!(rtc.read(REG_C), C_IRQF | C_UF);
}

#[test]
fn the_index_port_ignores_the_nmi_bit_and_any_index_is_harmless() {
    let mut rtc = Rig::at(LEAP_DAY);
    assert_eq!(rtc.read(0x80 | REG_D), D_VRT);
    assert_eq!(rtc.read(0x80 | SECONDS), 0x56);
    rtc.write(0xFF, 0xA5);
    assert_eq!(rtc.read(0x7F), 0xA5);
    let mut b = [0u8; 2];
    rtc.cmos.read(INDEX_PORT, &mut b[..1]);
    assert_eq!(b[0], 0xFF, "the index port is write-only");
    rtc.cmos.read(2, &mut b);
    assert_eq!(b, [0xFF, 0xFF]);
    rtc.cmos.write(5, &[0x12]);
    // A 16-bit write to the index port writes the data port too.
    rtc.cmos.write(INDEX_PORT, &[0x40, 0x5A]);
    assert_eq!(rtc.read(0x40), 0x5A);
    rtc.cmos.write(INDEX_PORT, &[SECONDS]);
    rtc.cmos.read(INDEX_PORT, &mut b);
    assert_eq!(b, [0xFF, 0x56]);
}

#[test]
fn the_ram_above_the_clock_is_writable() {
    let mut rtc = Rig::at(LEAP_DAY);
    for index in (0x0E..0x80).filter(|&i| i != CENTURY) {
        rtc.write(index, index ^ 0x5A);
    }
    for index in (0x0E..0x80).filter(|&i| i != CENTURY) {
        assert_eq!(rtc.read(index), index ^ 0x5A, "index {index:#x}");
    }
    assert_eq!(rtc.read(CENTURY), 0x20);
}
