//! Configuration a run is governed by: execution profiles, the home
//! directory's layout, private durable files and data classifications.
//!
//! Read-only inputs to every other layer; nothing here touches a run or the
//! evidence store. Defends against a half-understood configuration: a profile
//! either validates completely or is refused with the field that is wrong.

pub mod classification;
pub mod files;
pub mod home;
pub mod profile;
