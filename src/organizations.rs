//! The directory of organizations, and the organizations seeded on first start.

use std::collections::HashMap;

use entity::enums::OrgKind;
use serde::Deserialize;
use uuid::Uuid;

/// The seed file: the organizations named in the city plan (DOMAIN.md).
const SEED: &str = include_str!("seed/organizations.toml");

/// An organization as the workflow engine needs to know it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrgInfo {
    /// Primary key.
    pub id: Uuid,
    /// Stable code (`TJ-MIIT`, `D-120116`, `P-NSCC-TJ`, …) used by workflow definitions.
    pub code: String,
    /// Chinese name.
    pub name_zh: String,
    /// English name.
    pub name_en: String,
    /// What kind of organization this is.
    pub kind: OrgKind,
    /// For a platform operator: the code of the supervising bureau.
    pub supervisor_code: Option<String>,
}

impl OrgInfo {
    /// The name in `lang` (`en…` English, anything else Chinese).
    pub fn name(&self, lang: &str) -> &str {
        if lang.starts_with("en") {
            &self.name_en
        } else {
            &self.name_zh
        }
    }
}

/// All organizations, looked up by code or id.
#[derive(Debug, Clone, Default)]
pub struct OrgDirectory {
    by_code: HashMap<String, OrgInfo>,
    code_by_id: HashMap<Uuid, String>,
}

impl OrgDirectory {
    /// Builds the directory from a list of organizations.
    pub fn new(orgs: impl IntoIterator<Item = OrgInfo>) -> Self {
        let mut dir = Self::default();
        for org in orgs {
            dir.code_by_id.insert(org.id, org.code.clone());
            dir.by_code.insert(org.code.clone(), org);
        }
        dir
    }

    /// The directory of the seed organizations with fresh ids: for validating definitions
    /// without a database (`zhigang workflow check`) and for tests of the engine.
    pub fn from_seed() -> anyhow::Result<Self> {
        Ok(Self::new(seed_organizations()?.into_iter().map(|s| {
            OrgInfo {
                id: Uuid::now_v7(),
                code: s.code,
                name_zh: s.name_zh,
                name_en: s.name_en,
                kind: s.kind,
                supervisor_code: s.supervisor,
            }
        })))
    }

    /// The organization with this code.
    pub fn by_code(&self, code: &str) -> Option<&OrgInfo> {
        self.by_code.get(code)
    }

    /// The organization with this id.
    pub fn by_id(&self, id: Uuid) -> Option<&OrgInfo> {
        self.code_by_id.get(&id).and_then(|c| self.by_code.get(c))
    }

    /// The name of the organization with this id in `lang` (empty when unknown).
    pub fn name_of(&self, id: Uuid, lang: &str) -> String {
        self.by_id(id)
            .map(|o| o.name(lang).to_string())
            .unwrap_or_default()
    }

    /// Every organization, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = &OrgInfo> {
        self.by_code.values()
    }

    /// The district whose administrative division code is `division` (characters 3–8 of a USCC).
    pub fn district_for_division(&self, division: &str) -> Option<&OrgInfo> {
        self.by_code(&format!("D-{division}"))
            .filter(|o| o.kind == OrgKind::District)
    }
}

/// One organization of the seed file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedOrg {
    /// Stable code.
    pub code: String,
    /// Chinese name.
    pub name_zh: String,
    /// English name.
    pub name_en: String,
    /// Kind of organization.
    pub kind: OrgKind,
    /// Supervising bureau of a platform operator.
    pub supervisor: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SeedFile {
    organizations: Vec<SeedOrg>,
}

/// The organizations of the built-in seed file, in file order.
pub fn seed_organizations() -> anyhow::Result<Vec<SeedOrg>> {
    let file: SeedFile = toml::from_str(SEED)?;
    Ok(file.organizations)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_seed_names_every_district_and_platform_supervisor() -> anyhow::Result<()> {
        let seed = seed_organizations()?;
        let districts = seed.iter().filter(|o| o.kind == OrgKind::District).count();
        assert_eq!(districts, 16);
        let dir = OrgDirectory::from_seed()?;
        for org in dir.iter().filter(|o| o.kind == OrgKind::PlatformOperator) {
            let sup = org.supervisor_code.as_deref().and_then(|c| dir.by_code(c));
            assert!(
                sup.is_some_and(|s| s.kind == OrgKind::CityBureau),
                "{} has no supervising bureau",
                org.code
            );
        }
        assert_eq!(
            dir.district_for_division("120116")
                .map(|o| o.name_zh.as_str()),
            Some("滨海新区")
        );
        Ok(())
    }
}
