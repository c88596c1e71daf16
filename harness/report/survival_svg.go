package report

import (
	"encoding/xml"
	"fmt"
	"math"
	"strings"

	"zswaprace/harness/fsutil"
)

// WriteSurvivalSVG writes the Kaplan-Meier curves of every variant's time
// to first race failure (see SurvivalOf) as an SVG image to path,
// atomically. It is drawn by hand: a plotting library would have grown the
// harness binary by half for a few lines and a legend.
func WriteSurvivalSVG(path string, r *Report) error {
	return fsutil.WriteFileAtomic(path, []byte(survivalSVG(r)))
}

// The picture's geometry, in pixels.
const (
	svgWidth, svgHeight = 760, 460
	plotLeft, plotTop   = 70, 40
	plotRight           = 560
	plotBottom          = 370
)

var (
	curveColours = []string{"#d62728", "#1f77b4", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"}
	curveDashes  = []string{"", "7 4", "2 3", "9 3 2 3"}
)

func survivalSVG(r *Report) string {
	var curves []SurvivalCurve
	xmax := 0.0
	for _, v := range r.Variants {
		c := SurvivalOf(v)
		for _, run := range c.Runs {
			xmax = math.Max(xmax, run.Time)
		}
		curves = append(curves, c)
	}
	step := niceStep(xmax, 6)
	xend := math.Max(step, math.Ceil(xmax/step)*step)
	x := func(t float64) float64 { return plotLeft + t/xend*(plotRight-plotLeft) }
	y := svgY

	var b strings.Builder
	fmt.Fprintf(&b, `<?xml version="1.0" encoding="UTF-8"?>
<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">
`, svgWidth, svgHeight, svgWidth, svgHeight)
	fmt.Fprintf(&b, "<title>%s</title>\n<desc>%s</desc>\n", esc(toolName(r)+": time to first race failure"), esc(survivalCaption(curves)))
	fmt.Fprintf(&b, `<rect width="%d" height="%d" fill="white"/>`+"\n", svgWidth, svgHeight)
	fmt.Fprintf(&b, `<text x="%d" y="22" font-size="14" font-weight="bold">%s</text>`+"\n", plotLeft, esc("Time to first race failure ("+verdictOrNone(r)+")"))

	// Grid, ticks and axes.
	b.WriteString(`<g class="axes" stroke="#ccc" stroke-width="1">` + "\n")
	for i := 0; i <= 4; i++ {
		fmt.Fprintf(&b, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f"/>`+"\n", plotLeft, y(float64(i)/4), plotRight, y(float64(i)/4))
	}
	for t := 0.0; t <= xend+step/2; t += step {
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d"/>`+"\n", x(t), plotTop, x(t), plotBottom)
	}
	b.WriteString("</g>\n")
	fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%d" height="%d" fill="none" stroke="black"/>`+"\n", plotLeft, plotTop, plotRight-plotLeft, plotBottom-plotTop)
	b.WriteString(`<g class="labels">` + "\n")
	for i := 0; i <= 4; i++ {
		fmt.Fprintf(&b, `<text x="%d" y="%.1f" text-anchor="end">%g</text>`+"\n", plotLeft-6, y(float64(i)/4)+4, float64(i)/4)
	}
	for t := 0.0; t <= xend+step/2; t += step {
		fmt.Fprintf(&b, `<text x="%.1f" y="%d" text-anchor="middle">%g</text>`+"\n", x(t), plotBottom+16, roundTick(t))
	}
	fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="middle">seconds of stress</text>`+"\n", (plotLeft+plotRight)/2, plotBottom+34)
	fmt.Fprintf(&b, `<text transform="translate(20 %d) rotate(-90)" text-anchor="middle">fraction of runs without a race failure</text>`+"\n", (plotTop+plotBottom)/2)
	b.WriteString("</g>\n")

	// One step line per variant, a + per censored run, a legend entry.
	for i, c := range curves {
		colour := curveColours[i%len(curveColours)]
		dash := curveDashes[i%len(curveDashes)]
		dashAttr := ""
		if dash != "" {
			dashAttr = fmt.Sprintf(` stroke-dasharray="%s"`, dash)
		}
		ly := plotTop + 10 + i*40
		fmt.Fprintf(&b, `<g class="legend"><line x1="%d" y1="%d" x2="%d" y2="%d" stroke="%s" stroke-width="2"%s/><text x="%d" y="%d">%s</text><text x="%d" y="%d" font-size="11" fill="#555">%s</text></g>`+"\n",
			plotRight+15, ly, plotRight+45, ly, colour, dashAttr, plotRight+52, ly+4, esc(c.Variant),
			plotRight+52, ly+19, esc(legendDetail(c)))
		if len(c.Runs) == 0 {
			continue
		}
		d := fmt.Sprintf("M%.1f %.1f", x(0), y(1))
		prev := 1.0
		for _, st := range c.Steps {
			d += fmt.Sprintf(" H%.1f", x(st.Time))
			if st.Survival != prev {
				d += fmt.Sprintf(" V%.1f", y(st.Survival))
				prev = st.Survival
			}
		}
		fmt.Fprintf(&b, `<path class="curve" data-variant="%s" d="%s" fill="none" stroke="%s" stroke-width="2"%s/>`+"\n", esc(c.Variant), d, colour, dashAttr)
		for _, run := range c.Runs {
			if run.Event {
				continue
			}
			px, py := x(run.Time), y(c.At(run.Time))
			fmt.Fprintf(&b, `<path class="censored" data-variant="%s" d="M%.1f %.1f H%.1f M%.1f %.1f V%.1f" stroke="%s" stroke-width="1.5"><title>%s</title></path>`+"\n",
				esc(c.Variant), px-5, py, px+5, px, py-5, py+5, colour,
				esc(fmt.Sprintf("%s/run-%d: %s, no race failure in %s (censored)", c.Variant, run.Index, run.Outcome, seconds(run.Time))))
		}
	}
	if len(curves) == 0 || xmax == 0 {
		fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="middle" fill="#555">no run with time at risk</text>`+"\n", (plotLeft+plotRight)/2, (plotTop+plotBottom)/2)
	}

	// What the picture leaves out, in words under it.
	foot := plotBottom + 58
	fmt.Fprintf(&b, `<text x="%d" y="%d" font-size="11" fill="#333">%s</text>`+"\n", plotLeft-50, foot,
		esc("+ a run that ended without a race failure (censored): clean, interrupted, or stopped by another kernel failure."))
	var ex []string
	for _, c := range curves {
		if t := c.excludedText(); t != "" {
			ex = append(ex, c.Variant+": "+t)
		}
	}
	if len(ex) > 0 {
		fmt.Fprintf(&b, `<text class="excluded" x="%d" y="%d" font-size="11" fill="#333">%s</text>`+"\n", plotLeft-50, foot+16,
			esc("Not plotted, no time at risk: "+strings.Join(ex, "; ")+"."))
	}
	b.WriteString("</svg>\n")
	return b.String()
}

// svgY is where survival s is drawn: 1 a little below the frame's top, so
// that a curve that never falls stays visible.
func svgY(s float64) float64 {
	return plotBottom - s*(plotBottom-plotTop-12)
}

// legendDetail is a curve's runs and race failures.
func legendDetail(c SurvivalCurve) string {
	return fmt.Sprintf("%d %s, %d race %s", len(c.Runs), plural(len(c.Runs), "run", "runs"), c.Events(), plural(c.Events(), "failure", "failures"))
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// roundTick removes the float noise of adding steps (0.1+0.2).
func roundTick(t float64) float64 {
	return math.Round(t*1e6) / 1e6
}

func toolName(r *Report) string {
	if r.Tool == "" {
		return "zswaprace"
	}
	return r.Tool
}

func verdictOrNone(r *Report) string {
	if r.Verdict == "" {
		return "no verdict"
	}
	return "verdict " + r.Verdict
}

// esc escapes s for XML text and attribute values, replacing control
// characters XML cannot hold.
func esc(s string) string {
	var b strings.Builder
	xml.EscapeText(&b, []byte(printable(s)))
	return b.String()
}
