//! Helpers shared by the native integration tests.
#![allow(dead_code)]

use socket_lease::id::SeededEntropy;
use socket_lease::registry::options::{Options, OptionsPatch};
use socket_lease::registry::{Acquired, Registry};
use yaml_rust2::YamlLoader;

/// One case of the TypeID spec vectors.
pub struct Vector {
    pub name: String,
    pub typeid: String,
    pub prefix: String,
    pub uuid: String,
}

fn load(text: &str) -> Vec<Vector> {
    let docs = YamlLoader::load_from_str(text).expect("spec vectors are valid YAML");
    docs[0]
        .as_vec()
        .expect("a list of cases")
        .iter()
        .map(|case| Vector {
            name: case["name"].as_str().unwrap_or_default().to_owned(),
            typeid: case["typeid"].as_str().expect("typeid").to_owned(),
            prefix: case["prefix"].as_str().unwrap_or_default().to_owned(),
            uuid: case["uuid"].as_str().unwrap_or_default().to_owned(),
        })
        .collect()
}

pub fn valid_vectors() -> Vec<Vector> {
    load(include_str!("../fixtures/typeid/valid.yml"))
}

pub fn invalid_vectors() -> Vec<Vector> {
    load(include_str!("../fixtures/typeid/invalid.yml"))
}

/// A registry over the defaults plus `patch`, with a seeded generator.
pub fn registry(patch: OptionsPatch) -> Registry<SeededEntropy> {
    let mut reg = Registry::new(
        Options::default()
            .patched(&patch)
            .expect("valid test options"),
        SeededEntropy::new(42),
    );
    reg.set_collect_events(true);
    reg
}

/// Acquires and expects a grant; returns the lease's 128-bit id.
pub fn grant(reg: &mut Registry<SeededEntropy>, user: &str, now: u64) -> u128 {
    match reg.acquire(user, None, now).expect("valid input") {
        Acquired::Granted { handle, .. } => reg.lease(handle).expect("live").uuid,
        Acquired::Refused(r) => panic!("expected a grant for {user}, got {r:?}"),
    }
}

pub fn conn(uuid: u128) -> String {
    socket_lease::id::format("conn", uuid)
}
