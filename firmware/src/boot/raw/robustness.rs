use super::tests_support::*;
use crate::fakes::Rng;

#[test]
fn mutated_and_truncated_images_never_panic() {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let seeds = seed_images();
    for round in 0..3000 {
        let mut img = seeds[round % seeds.len()].clone();
        for _ in 0..1 + rng.next(8) {
            let at = rng.next(img.len() as u64) as usize;
            img[at] = rng.next(256) as u8;
        }
        if rng.next(4) == 0 {
            img.truncate(rng.next(img.len() as u64 + 1) as usize);
        }
        let _ = boot(img, &[]);
    }
}
