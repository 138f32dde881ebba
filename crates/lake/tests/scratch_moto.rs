mod common;
use std::io::Write;
#[test]
fn scratch() {
    let moto = common::start_moto().unwrap();
    common::moto_create_bucket(moto.port, "lake");
    let options = common::moto_options(moto.port);
    let dest = lake::Destination::open_with("s3://lake/haven/test", &options).unwrap();
    for key in ["a/b.txt", "a/run=r1/b.txt"] {
        let t = std::time::Instant::now();
        let mut w = dest.writer(key).unwrap();
        w.write_all(b"hello").unwrap();
        w.finish().unwrap();
        eprintln!("{key} {:?}", t.elapsed());
    }
    let mut ws: Vec<_> = (0..20).map(|i| dest.writer(&format!("c/{i}.txt")).unwrap()).collect();
    for w in &mut ws { w.write_all(b"x").unwrap(); }
    let t = std::time::Instant::now();
    for w in ws { w.finish().unwrap(); }
    eprintln!("20 writers {:?}", t.elapsed());
}
