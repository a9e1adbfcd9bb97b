//! `rmf-dash trace gen` (placeholder while the generator is written).
#[derive(clap::Args, Debug, Clone)]
pub struct SiteArgs {}
impl SiteArgs { pub fn config(&self) -> Result<(), String> { Ok(()) } }
pub fn generate(_c: &(), _o: &std::path::Path, _w: Option<&std::path::Path>) -> Result<String, std::io::Error> { Ok(String::new()) }
