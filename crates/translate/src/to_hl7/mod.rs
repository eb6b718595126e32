//! FHIR `Bundle` → GP2GP `EhrExtract`. (Being written.)
