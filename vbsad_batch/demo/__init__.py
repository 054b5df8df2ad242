"""The embedded demo of `vbsad run`: toy same-sign WW samples and their analysis config.

A toy for demonstration and testing, not a physics generator. Modules:

- `eft_response`: the toy EFT response (LIN and QUAD per operator), the only place that
  holds the demo's EFT content;
- `toy_events`: the toy kinematics (tagging jets, W bosons and their decays) and weights;
- `lhe_writer`: the samples in MadGraph 3 LHE format (`write_demo_lhe`, `generate_demo`);
- `demo_config`: the demo's sizes and its analysis config (`demo.toml`);
- `prepare`: the demo stage of `vbsad run`: the samples and config, skipped when current.
"""
