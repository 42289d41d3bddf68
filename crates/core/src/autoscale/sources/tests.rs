//! Real-component tests of the sources.
