"""Model files and what is decided with them: deterministic skops bytes and trusted loading
(`modelio`), decision rules over scores (`decisions`), the versioned registry and its file lock
(`registry`, `lockfile`), and the developer tool that regenerates the runtime's trusted names
(`trust_catalog`)."""
