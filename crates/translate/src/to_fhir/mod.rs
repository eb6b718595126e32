//! GP2GP `EhrExtract` → FHIR `Bundle`. (Being written.)
