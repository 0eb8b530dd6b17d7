//! Pages as a person sees them: headless Chromium (Debian's `chromium`, which `.ci/run`
//! installs) loads a page that `xscp` wrote and reports what it rendered. Chromium is
//! required: without it these tests fail, they do not skip.
//!
//! - [`measure`]: the page's DOM after layout, as a copy of the page with a measuring
//!   script appended (the page itself has none): every resource the page loaded, and per
//!   `<svg>` its rendered size, its steps, its failure notes, the texts that were drawn
//!   with a size, the texts outside the picture, and the arrow labels wider than their
//!   arrow.
//! - [`screenshot`]: a PNG of the page, decoded, with the variety of its pixels.
//! - [`print_pdf`]: the page printed (its print style sheet) to PDF.
//!
//! Each run gets its own profile directory, so that tests may run Chromium side by side,
//! and is bounded by [`BROWSER_WAIT`].

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::harness::try_run_within;

/// The bound of one Chromium run: it starts in seconds, but on two busy cores a cold start
/// may take many.
const BROWSER_WAIT: Duration = Duration::from_secs(180);

/// The browser: `$XSCP_CHROMIUM` if set, else `chromium` on the `PATH`.
fn chromium() -> String {
    std::env::var("XSCP_CHROMIUM").unwrap_or_else(|_| "chromium".into())
}

/// Runs headless Chromium on `url` with `args`, in a fresh profile under `dir`; its
/// standard output.
fn run_chromium(dir: &Path, args: &[&str], url: &str) -> Vec<u8> {
    let profile = dir.join(format!("chromium-profile-{}", unique()));
    let profile_arg = format!("--user-data-dir={}", profile.display());
    let mut all = vec![
        "--headless",
        // As root (in CI) Chromium refuses its sandbox; the pages are our own files.
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--no-default-browser-check",
        "--disable-extensions",
        "--disable-background-networking",
        "--hide-scrollbars",
        &profile_arg,
    ];
    all.extend_from_slice(args);
    all.push(url);
    let out = try_run_within(&chromium(), &all, &[], BROWSER_WAIT)
        .unwrap_or_else(|e| panic!("start {} (install Debian's chromium): {e}", chromium()));
    let _ = std::fs::remove_dir_all(&profile);
    assert!(
        out.status.success(),
        "chromium {all:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// A number no other run of this process uses, for file names.
fn unique() -> String {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    format!(
        "{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

fn url(page: &Path) -> String {
    format!(
        "file://{}",
        page.canonicalize().expect("the page exists").display()
    )
}

/// The script appended to a copy of the page: it measures what was laid out and writes one
/// line per fact into a `<pre id="xscp-measure">`.
const MEASURE: &str = r#"<script>
(function () {
  var out = ['resources ' + performance.getEntriesByType('resource').length];
  document.querySelectorAll('svg').forEach(function (svg) {
    var r = svg.getBoundingClientRect();
    var vb = svg.viewBox.baseVal;
    var drawn = 0, outside = 0, squeezed = 0;
    svg.querySelectorAll('text').forEach(function (t) {
      var b = t.getBBox();
      if (b.width > 0 && b.height > 0) drawn++;
      if (b.x < vb.x - 1 || b.y < vb.y - 1 || b.x + b.width > vb.x + vb.width + 1 ||
          b.y + b.height > vb.y + vb.height + 1) outside++;
    });
    svg.querySelectorAll('.step.message').forEach(function (g) {
      var line = g.querySelector('line'), text = g.querySelector('text');
      if (!line || !text) return;
      var a = Math.min(line.x1.baseVal.value, line.x2.baseVal.value);
      var z = Math.max(line.x1.baseVal.value, line.x2.baseVal.value);
      var b = text.getBBox();
      if (b.x < a - 1 || b.x + b.width > z + 1) squeezed++;
    });
    out.push(['svg', svg.getAttribute('class'), Math.round(r.width), Math.round(r.height),
      svg.querySelectorAll('.step').length, svg.querySelectorAll('.step.note.fail').length,
      drawn, outside, squeezed].join(' '));
  });
  var pre = document.createElement('pre');
  pre.id = 'xscp-measure';
  pre.textContent = out.join('\n');
  document.body.appendChild(pre);
})();
</script>"#;

/// One `<svg>` as Chromium laid it out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Svg {
    /// Its `class` (`seq` for a sequence diagram, `fsm` for the state machine).
    pub class: String,
    /// Its size on the page, in CSS pixels.
    pub width: u32,
    pub height: u32,
    /// Its `.step` groups, and those that are failure notes.
    pub steps: usize,
    pub fails: usize,
    /// Its texts drawn with a size, those outside its viewBox, and the arrow labels wider
    /// than their arrow.
    pub drawn: usize,
    pub outside: usize,
    pub squeezed: usize,
}

/// What Chromium rendered of a page.
#[derive(Clone, Debug)]
pub struct Rendered {
    /// The DOM after parsing and layout (with the measuring script's output).
    pub dom: String,
    /// Resources the page loaded (it must load none: it is self-contained).
    pub resources: usize,
    pub svgs: Vec<Svg>,
}

impl Rendered {
    /// The measured sequence diagrams.
    pub fn sequences(&self) -> Vec<&Svg> {
        self.svgs.iter().filter(|s| s.class == "seq").collect()
    }
}

/// Loads `page` in Chromium and measures what it laid out.
pub fn measure(page: &Path) -> Rendered {
    let html = std::fs::read_to_string(page).expect("read the page");
    let at = html.rfind("</body>").expect("a </body>");
    let copy = page.with_file_name(format!("measure-{}.html", unique()));
    std::fs::write(&copy, format!("{}{MEASURE}\n{}", &html[..at], &html[at..])).expect("write");
    let dir = copy.parent().expect("a folder").to_path_buf();
    let dom =
        String::from_utf8_lossy(&run_chromium(&dir, &["--dump-dom"], &url(&copy))).into_owned();
    let _ = std::fs::remove_file(&copy);
    let start = dom
        .find("<pre id=\"xscp-measure\">")
        .unwrap_or_else(|| panic!("no measurement in {dom}"));
    let body = &dom[start + "<pre id=\"xscp-measure\">".len()..];
    let body = &body[..body.find("</pre>").expect("</pre>")];
    let mut resources = usize::MAX;
    let mut svgs = Vec::new();
    for line in body.lines() {
        let w: Vec<&str> = line.split(' ').collect();
        let n = |i: usize| -> usize { w[i].parse().unwrap_or_else(|_| panic!("{line}")) };
        match w[0] {
            "resources" => resources = n(1),
            "svg" => svgs.push(Svg {
                class: w[1].to_string(),
                width: n(2) as u32,
                height: n(3) as u32,
                steps: n(4),
                fails: n(5),
                drawn: n(6),
                outside: n(7),
                squeezed: n(8),
            }),
            _ => panic!("unexpected measurement {line}"),
        }
    }
    Rendered {
        dom,
        resources,
        svgs,
    }
}

/// A screenshot, decoded.
#[derive(Clone, Debug)]
pub struct Screenshot {
    pub width: u32,
    pub height: u32,
    /// Distinct colours among its pixels.
    pub colours: usize,
    /// The share of its pixels that are not white.
    pub inked: f64,
}

/// Chromium's screenshot of `page` in a window `width` × `height`, decoded.
pub fn screenshot(page: &Path, width: u32, height: u32, keep: Option<&Path>) -> Screenshot {
    let dir = page.parent().expect("a folder").to_path_buf();
    let png = keep
        .map(Path::to_path_buf)
        .unwrap_or_else(|| dir.join(format!("shot-{}.png", unique())));
    let shot = format!("--screenshot={}", png.display());
    let size = format!("--window-size={width},{height}");
    run_chromium(&dir, &[&shot, &size], &url(page));
    let bytes = std::fs::read(&png).expect("the screenshot");
    if keep.is_none() {
        let _ = std::fs::remove_file(&png);
    }
    let decoder = png::Decoder::new(std::io::Cursor::new(bytes));
    let mut reader = decoder.read_info().expect("a PNG");
    let mut buf = vec![0; reader.output_buffer_size().expect("a PNG of sane size")];
    let info = reader.next_frame(&mut buf).expect("a PNG frame");
    let channels = info.color_type.samples();
    assert_eq!(
        info.bit_depth,
        png::BitDepth::Eight,
        "Chromium writes 8-bit PNGs"
    );
    assert!(
        channels >= 3,
        "Chromium writes RGB or RGBA: {:?}",
        info.color_type
    );
    let pixels = &buf[..info.buffer_size()];
    let mut colours = std::collections::HashSet::new();
    let mut inked = 0usize;
    for p in pixels.chunks_exact(channels) {
        let rgb = [p[0], p[1], p[2]];
        colours.insert(rgb);
        if rgb != [255, 255, 255] {
            inked += 1;
        }
    }
    Screenshot {
        width: info.width,
        height: info.height,
        colours: colours.len(),
        inked: inked as f64 / (pixels.len() / channels).max(1) as f64,
    }
}

/// The page printed to PDF by Chromium: its bytes.
pub fn print_pdf(page: &Path) -> Vec<u8> {
    let dir = page.parent().expect("a folder").to_path_buf();
    let pdf = dir.join(format!("print-{}.pdf", unique()));
    let arg = format!("--print-to-pdf={}", pdf.display());
    run_chromium(&dir, &[&arg, "--no-pdf-header-footer"], &url(page));
    let bytes = std::fs::read(&pdf).expect("the PDF");
    let _ = std::fs::remove_file(&pdf);
    bytes
}

/// The pages of a PDF Chromium wrote (its `/Type /Page` objects).
pub fn pdf_pages(pdf: &[u8]) -> usize {
    let text = String::from_utf8_lossy(pdf);
    text.matches("/Type /Page").count() - text.matches("/Type /Pages").count()
}

/// A fresh scratch folder under the target directory.
pub fn scratch(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("browser-{name}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

/// The measurements mean what they say: a page with a drawn picture is measured with its
/// picture, a label too wide for its arrow is caught, and a blank page is blank.
#[test]
fn the_browser_measures_what_it_drew() {
    let dir = scratch("self-test");
    let page = dir.join("page.html");
    std::fs::write(
        &page,
        "<!DOCTYPE html><html><body><svg class=\"seq\" viewBox=\"0 0 200 60\" width=\"200\" height=\"60\">\
         <g class=\"step message line\"><line x1=\"10\" y1=\"40\" x2=\"60\" y2=\"40\" stroke=\"#000\"/>\
         <text x=\"35\" y=\"30\" text-anchor=\"middle\">a label far too long for its arrow</text></g>\
         <g class=\"step note fail\"><rect x=\"1\" y=\"1\" width=\"30\" height=\"10\" fill=\"red\"/></g>\
         </svg></body></html>",
    )
    .unwrap();
    let r = measure(&page);
    assert_eq!(r.resources, 0);
    assert_eq!(r.svgs.len(), 1);
    let s = &r.svgs[0];
    assert_eq!((s.class.as_str(), s.width, s.height), ("seq", 200, 60));
    assert_eq!((s.steps, s.fails, s.drawn), (2, 1, 1));
    assert_eq!((s.outside, s.squeezed), (1, 1), "{s:?}");
    let shot = screenshot(&page, 400, 200, None);
    assert_eq!((shot.width, shot.height), (400, 200));
    assert!(shot.colours > 2 && shot.inked > 0.001, "{shot:?}");
    let blank = dir.join("blank.html");
    std::fs::write(
        &blank,
        "<!DOCTYPE html><html><body style=\"background:#fff\"></body></html>",
    )
    .unwrap();
    let shot = screenshot(&blank, 400, 200, None);
    assert_eq!((shot.colours, shot.inked), (1, 0.0), "{shot:?}");
    assert_eq!(pdf_pages(&print_pdf(&page)), 1);
}
