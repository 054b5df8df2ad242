//! What an LHE file says about itself before its events: the LHEF version, the MadGraph
//! banner's generation info, the `<init>` block, the generators and the declared weights.

use serde::Serialize;

use super::xml_scan::{attr, next_tag, text_until_close, unescape};
use crate::fields::{fields, parse_f64, parse_i64};

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Generator {
    pub name: String,
    pub version: Option<String>,
}

/// The first line of `<init>` (LHA user process common block HEPRUP).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Beams {
    /// PDG ids of the two beams.
    pub idbmup: [i64; 2],
    /// Beam energies in GeV.
    pub ebmup: [f64; 2],
    pub pdfgup: [i64; 2],
    pub pdfsup: [i64; 2],
    /// Weighting strategy (LHA IDWTUP).
    pub idwtup: i64,
    /// Number of processes declared.
    pub nprup: i64,
}

/// One process line of `<init>`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Process {
    /// Cross section in pb.
    pub xsecup: f64,
    /// Its statistical error in pb.
    pub xerrup: f64,
    /// Maximum event weight.
    pub xmaxup: f64,
    pub lprup: i64,
}

/// MadGraph's `<MGGenerationInfo>` banner block.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct MgGenerationInfo {
    pub n_events: Option<u64>,
    /// "Integrated weight (pb)": the cross section MadGraph reports, in pb.
    pub integrated_weight_pb: Option<f64>,
}

/// A named event weight declared in `<initrwgt>` (or LHEF 3.0 `<weightinfo>`).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct WeightDecl {
    pub id: String,
    pub description: String,
    /// Name (or type) of the enclosing `<weightgroup>`.
    pub group: Option<String>,
}

/// The file's metadata before its events. Declared here once: [`crate::FileSummary`]
/// embeds it (flattened), and so does the JSON that Python reads as `LheInfo`, so a field
/// added here appears in all three.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct FileHeader {
    /// The `version` attribute of `<LesHouchesEvents>`.
    pub lhef_version: String,
    pub generators: Vec<Generator>,
    pub beams: Beams,
    pub processes: Vec<Process>,
    pub mg_generation_info: Option<MgGenerationInfo>,
    /// Named weights declared in `<initrwgt>` (or LHEF 3.0 `<weightinfo>`).
    pub weights: Vec<WeightDecl>,
    /// Oddities that do not stop the reading but that a user should know about.
    pub warnings: Vec<String>,
}

/// Reads `<MGGenerationInfo>`, `<initrwgt>`, `<weightinfo>` and `<generator>` tags from
/// header or init text, appending to `out`.
pub(crate) fn scan_declarations(
    text: &[u8],
    out: &mut FileHeader,
    weightinfo: &mut Vec<WeightDecl>,
) {
    let mut pos = 0;
    let mut in_initrwgt = false;
    let mut group: Option<String> = None;
    while let Some(tag) = next_tag(text, pos) {
        pos = tag.end;
        match (tag.name, tag.closing) {
            (b"initrwgt", closing) => {
                in_initrwgt = !closing;
                group = None;
            }
            (b"weightgroup", false) if in_initrwgt => {
                let name = attr(tag.attrs, b"name").or_else(|| attr(tag.attrs, b"type"));
                group = name.map(unescape);
            }
            (b"weightgroup", true) => group = None,
            (b"weight", false) if in_initrwgt => {
                let Some(id) = attr(tag.attrs, b"id") else {
                    continue;
                };
                let (body, after) =
                    text_until_close(text, tag.end, b"weight").unwrap_or((b"", tag.end));
                pos = after;
                let id = unescape(id);
                if !out.weights.iter().any(|w| w.id == id) {
                    out.weights.push(WeightDecl {
                        id,
                        description: unescape(body.trim_ascii()),
                        group: group.clone(),
                    });
                }
            }
            (b"weightinfo", false) => {
                if let Some(name) = attr(tag.attrs, b"name") {
                    weightinfo.push(WeightDecl {
                        id: unescape(name),
                        description: unescape(tag.attrs.trim_ascii()),
                        group: None,
                    });
                }
            }
            (b"generator", false) => {
                let (body, after) =
                    text_until_close(text, tag.end, b"generator").unwrap_or((b"", tag.end));
                pos = after;
                let body = unescape(body.trim_ascii());
                let name = attr(tag.attrs, b"name").map(unescape);
                let (name, version) = match name {
                    Some(n) => (n, attr(tag.attrs, b"version").map(unescape)),
                    None => (body, attr(tag.attrs, b"version").map(unescape)),
                };
                out.generators.push(Generator { name, version });
            }
            (b"MGGenerationInfo", false) => {
                let (body, after) =
                    text_until_close(text, tag.end, b"MGGenerationInfo").unwrap_or((b"", tag.end));
                pos = after;
                out.mg_generation_info = Some(parse_mg_generation_info(body));
            }
            _ => {}
        }
    }
}

fn parse_mg_generation_info(body: &[u8]) -> MgGenerationInfo {
    let mut info = MgGenerationInfo::default();
    for line in body.split(|&b| b == b'\n') {
        let text = String::from_utf8_lossy(line);
        let Some((key, value)) = text.split_once(':') else {
            continue;
        };
        let key = key
            .trim_start_matches(['#', ' '])
            .trim()
            .to_ascii_lowercase();
        let value = value.trim().as_bytes();
        if key.starts_with("number of events") {
            info.n_events = parse_i64(value).and_then(|v| u64::try_from(v).ok());
        } else if key.starts_with("integrated weight") {
            info.integrated_weight_pb = parse_f64(value);
        }
    }
    info
}

/// Parses the numeric lines of `<init>`: the beam line, then NPRUP process lines.
/// Returns the index of the first line that is not part of that block, or an error
/// message and the index of the offending line.
pub(crate) fn parse_init_numbers(
    lines: &[&[u8]],
    out: &mut FileHeader,
) -> Result<usize, (usize, String)> {
    let mut idx = 0;
    let next_data_line = |idx: &mut usize| -> Option<usize> {
        while *idx < lines.len() {
            let t = lines[*idx].trim_ascii();
            if t.is_empty() || t.starts_with(b"#") {
                *idx += 1;
                continue;
            }
            return Some(*idx);
        }
        None
    };
    let Some(beam_line) = next_data_line(&mut idx) else {
        return Err((
            lines.len().saturating_sub(1),
            "empty <init> block".to_owned(),
        ));
    };
    let f: Vec<&[u8]> = fields(lines[beam_line]).collect();
    if f.len() != 10 {
        return Err((
            beam_line,
            format!("<init> beam line must have 10 fields, found {}", f.len()),
        ));
    }
    let int = |i: usize| {
        parse_i64(f[i]).ok_or((
            beam_line,
            format!(
                "<init> field {} is not an integer: {:?}",
                i + 1,
                lossy(f[i])
            ),
        ))
    };
    let float = |i: usize| {
        parse_f64(f[i]).ok_or((
            beam_line,
            format!("<init> field {} is not a number: {:?}", i + 1, lossy(f[i])),
        ))
    };
    out.beams = Beams {
        idbmup: [int(0)?, int(1)?],
        ebmup: [float(2)?, float(3)?],
        pdfgup: [int(4)?, int(5)?],
        pdfsup: [int(6)?, int(7)?],
        idwtup: int(8)?,
        nprup: int(9)?,
    };
    idx = beam_line + 1;
    let nprup = out.beams.nprup;
    if !(0..=100_000).contains(&nprup) {
        return Err((
            beam_line,
            format!("<init> NPRUP = {nprup} is not a process count"),
        ));
    }
    for k in 0..nprup {
        // Some generators (GiBUU) declare processes they never list: say so, keep going.
        let listed =
            next_data_line(&mut idx).filter(|&l| !lines[l].trim_ascii_start().starts_with(b"<"));
        let Some(line) = listed else {
            out.warnings.push(format!(
                "<init> declares NPRUP = {nprup} processes but lists {k}: cross sections of the others are unknown"
            ));
            break;
        };
        let f: Vec<&[u8]> = fields(lines[line]).collect();
        let bad = || {
            (
                line,
                format!(
                    "<init> process line {} must be 'XSECUP XERRUP XMAXUP LPRUP'",
                    k + 1
                ),
            )
        };
        if f.len() != 4 {
            return Err(bad());
        }
        out.processes.push(Process {
            xsecup: parse_f64(f[0]).ok_or_else(bad)?,
            xerrup: parse_f64(f[1]).ok_or_else(bad)?,
            xmaxup: parse_f64(f[2]).ok_or_else(bad)?,
            lprup: parse_i64(f[3]).ok_or_else(bad)?,
        });
        idx = line + 1;
    }
    Ok(idx)
}

pub(crate) fn lossy(bytes: &[u8]) -> String {
    let mut s = String::from_utf8_lossy(bytes).into_owned();
    if s.len() > 40 {
        let mut cut = 40;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
        s.push('…');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn declarations_from_a_madgraph_like_header() {
        let text = b"<MGGenerationInfo>\n#  Number of Events        :       2000\n\
#  Integrated weight (pb)  :       0.002640032203213209\n</MGGenerationInfo>\n\
<initrwgt>\n<weightgroup name='mg_reweighting' weight_name_strategy='includeIdInWeightName'>\n\
<weight id='cW_p1'> set param_card cW 1.0 </weight>\n</weightgroup>\n\
<weight id=\"lone\">outside &amp; alone</weight>\n</initrwgt>\n\
<generator name='MadGraph5_aMC@NLO' version='3.5.7'>please cite 1405.0301 </generator>\n\
<generator version=\"3.1.6\">WHIZARD</generator>\n<weightinfo name=\"test\" muf=\"2.0\" />";
        let mut h = FileHeader::default();
        let mut wi = Vec::new();
        scan_declarations(text, &mut h, &mut wi);
        let mg = h.mg_generation_info.unwrap();
        assert_eq!(mg.n_events, Some(2000));
        assert_eq!(mg.integrated_weight_pb, Some(0.002640032203213209));
        assert_eq!(h.weights.len(), 2);
        assert_eq!(h.weights[0].id, "cW_p1");
        assert_eq!(h.weights[0].description, "set param_card cW 1.0");
        assert_eq!(h.weights[0].group.as_deref(), Some("mg_reweighting"));
        assert_eq!(h.weights[1].description, "outside & alone");
        assert_eq!(h.weights[1].group, None);
        assert_eq!(h.generators[0].name, "MadGraph5_aMC@NLO");
        assert_eq!(h.generators[1].name, "WHIZARD");
        assert_eq!(h.generators[1].version.as_deref(), Some("3.1.6"));
        assert_eq!(wi[0].id, "test");
    }

    #[test]
    fn init_numbers_and_their_errors() {
        let lines: Vec<&[u8]> = vec![
            b"2212 2212 6.5D+03 6.5e3 0 0 247000 247000 -4 2",
            b"# a comment",
            b"1.0e-3 1e-5 2.0e-3 1",
            b" .5 +1 2 2",
            b"<generator>",
        ];
        let mut h = FileHeader::default();
        assert_eq!(parse_init_numbers(&lines, &mut h), Ok(4));
        assert_eq!(h.beams.ebmup, [6500.0, 6500.0]);
        assert_eq!(h.processes.len(), 2);
        assert_eq!(h.processes[1].xsecup, 0.5);
        let lines: Vec<&[u8]> = vec![
            b"2212 2212 6500 6500 0 0 247000 247000 -4 2",
            b"1 1 1 1",
            b"<generator>",
        ];
        let mut h = FileHeader::default();
        assert_eq!(parse_init_numbers(&lines, &mut h), Ok(2));
        assert_eq!(h.processes.len(), 1);
        assert!(h.warnings[0].contains("NPRUP = 2"), "{:?}", h.warnings);
        let lines: Vec<&[u8]> = vec![b"2212 2212 6500 6500 0 0 247000 247000 -4 1", b"1 1 1"];
        let err = parse_init_numbers(&lines, &mut FileHeader::default()).unwrap_err();
        assert_eq!(err.0, 1);
        let lines: Vec<&[u8]> = vec![b"2212 2212 *** 6500 0 0 247000 247000 -4 1"];
        let err = parse_init_numbers(&lines, &mut FileHeader::default()).unwrap_err();
        assert!(err.1.contains("field 3"), "{}", err.1);
    }
}
