package report

import (
	"errors"
	"fmt"
	"image"
	"image/color"
	"io"
	"math"
	"strconv"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/font"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/text"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// dpi is the resolution of every PNG; sizes below are given in pixels.
const dpi = 96

// px converts pixels at dpi to vg lengths.
func px(n float64) vg.Length { return vg.Length(n) * vg.Inch / dpi }

var (
	trainColor = color.RGBA{31, 119, 180, 255} // matplotlib's C0 / C1
	valColor   = color.RGBA{255, 127, 14, 255}
)

// savePNG renders a w×h pixel image with paint and writes it atomically.
func savePNG(path string, w, h int, paint func(dc draw.Canvas)) error {
	c := vgimg.NewWith(vgimg.UseWH(px(float64(w)), px(float64(h))), vgimg.UseDPI(dpi))
	dc := draw.New(c)
	dc.SetColor(color.White)
	dc.Fill(dc.Rectangle.Path())
	paint(dc)
	return writeAtomic(path, func(wr io.Writer) error {
		_, err := vgimg.PngCanvas{Canvas: c}.WriteTo(wr)
		return err
	})
}

func fontOf(size float64) font.Font { return font.From(plot.DefaultFont, px(size)) }

// styleFonts sets readable font sizes on a plot.
func styleFonts(p *plot.Plot) {
	p.Title.TextStyle.Font = fontOf(17)
	for _, a := range []*plot.Axis{&p.X, &p.Y} {
		a.Label.TextStyle.Font = fontOf(14)
		a.Tick.Label.Font = fontOf(13)
	}
	p.Legend.TextStyle.Font = fontOf(13)
}

// PlotCurves draws curves.png: loss (left) and accuracy (right) per epoch,
// training against validation when the history has it. The x axis shows
// epochs counted from 1. Non-finite values are left out of the lines.
func PlotCurves(path string, h History) error {
	if len(h) == 0 {
		return fmt.Errorf("plot %s: empty history", path)
	}
	mk := func(title, ylabel string, legendTop bool, train, val func(Epoch) float64) (*plot.Plot, error) {
		p := plot.New()
		styleFonts(p)
		p.Title.Text = title
		p.X.Label.Text = "epoch"
		p.Y.Label.Text = ylabel
		p.Add(plotter.NewGrid())
		p.Legend.Top = legendTop
		p.Legend.XOffs, p.Legend.YOffs = -px(12), px(12)
		if legendTop {
			p.Legend.YOffs = -px(12)
		}
		add := func(name string, col color.Color, get func(Epoch) float64, only func(Epoch) bool) error {
			var xy plotter.XYs
			for _, e := range h {
				v := get(e)
				if only(e) && !math.IsNaN(v) && !math.IsInf(v, 0) {
					xy = append(xy, plotter.XY{X: float64(e.Epoch + 1), Y: v})
				}
			}
			if len(xy) == 0 {
				return nil
			}
			l, s, err := plotter.NewLinePoints(xy)
			if err != nil {
				return err
			}
			l.Color, l.Width = col, px(2.5)
			s.Color, s.Shape, s.Radius = col, draw.CircleGlyph{}, px(3)
			p.Add(l, s)
			p.Legend.Add(name, l, s)
			return nil
		}
		if err := add("train", trainColor, train, func(Epoch) bool { return true }); err != nil {
			return nil, err
		}
		if err := add("validation", valColor, val, func(e Epoch) bool { return e.HasVal }); err != nil {
			return nil, err
		}
		p.X.Tick.Marker = epochTicks{}
		return p, nil
	}
	lp, err := mk("Loss", "loss", true, func(e Epoch) float64 { return e.Loss }, func(e Epoch) float64 { return e.ValLoss })
	if err != nil {
		return fmt.Errorf("plot %s: %w", path, err)
	}
	ap, err := mk("Accuracy", "accuracy", false, func(e Epoch) float64 { return e.Accuracy }, func(e Epoch) float64 { return e.ValAccuracy })
	if err != nil {
		return fmt.Errorf("plot %s: %w", path, err)
	}
	return savePNG(path, 1200, 480, func(dc draw.Canvas) {
		tiles := draw.Tiles{Rows: 1, Cols: 2, PadX: px(30), PadY: px(15), PadTop: px(10), PadBottom: px(10), PadLeft: px(10), PadRight: px(20)}
		cs := plot.Align([][]*plot.Plot{{lp, ap}}, tiles, dc)
		lp.Draw(cs[0][0])
		ap.Draw(cs[0][1])
	})
}

// epochTicks labels whole epochs: every epoch up to 12, else every 2nd,
// 5th, 10th, … so at most about 12 labels show.
type epochTicks struct{}

func (epochTicks) Ticks(lo, hi float64) []plot.Tick {
	first, last := math.Ceil(lo), math.Floor(hi)
	step := 1.0
	for _, s := range []float64{1, 2, 5, 10, 20, 50, 100, 200, 500, 1000} {
		step = s
		if (last-first)/s <= 12 {
			break
		}
	}
	var out []plot.Tick
	for v := first; v <= last; v++ {
		if int(v)%int(step) == 0 {
			out = append(out, plot.Tick{Value: v, Label: strconv.Itoa(int(v))})
		} else if last-first <= 60 {
			out = append(out, plot.Tick{Value: v})
		}
	}
	return out
}

// confusionGrid adapts a confusion matrix to plotter.GridXYZ: column c is
// predicted class c, row r is true class k-1-r (class 0 at the top), and
// the value is the fraction of the true class predicted as c.
type confusionGrid struct{ m Metrics }

func (g confusionGrid) Dims() (c, r int) { return len(g.m.Classes), len(g.m.Classes) }
func (g confusionGrid) X(c int) float64  { return float64(c) }
func (g confusionGrid) Y(r int) float64  { return float64(r) }
func (g confusionGrid) Z(c, r int) float64 {
	t := len(g.m.Classes) - 1 - r
	return ratio(g.m.Confusion[t][c], g.m.PerClass[t].Support)
}

// blues is a white-to-dark-blue palette.
type blues []color.Color

func (b blues) Colors() []color.Color { return b }

func newBlues(n int) blues {
	p := make(blues, n)
	for i := range p {
		f := float64(i) / float64(n-1)
		p[i] = color.RGBA{uint8(247 - f*239), uint8(251 - f*203), uint8(255 - f*148), 255}
	}
	return p
}

// PlotConfusion draws confusion.png: the confusion matrix as a heat map
// (rows true class, columns predicted), each cell coloured by the fraction
// of its true class (so classes of different size compare) and labelled
// with its count.
func PlotConfusion(path string, m Metrics) error {
	k := len(m.Classes)
	if k == 0 || len(m.Confusion) != k || len(m.PerClass) != k {
		return fmt.Errorf("plot %s: metrics have no confusion matrix", path)
	}
	p := plot.New()
	styleFonts(p)
	p.Title.Text = fmt.Sprintf("Confusion matrix (test accuracy %.1f%%, %d images)", 100*m.Accuracy, m.N)
	p.X.Label.Text = "predicted class"
	p.Y.Label.Text = "true class"
	hm := plotter.NewHeatMap(confusionGrid{m}, newBlues(256))
	hm.Min, hm.Max = 0, 1
	p.Add(hm)
	var xt, yt []plot.Tick
	var xy plotter.XYs
	var labels []string
	var styles []text.Style
	for c := 0; c < k; c++ {
		xt = append(xt, plot.Tick{Value: float64(c), Label: m.Classes[c]})
		yt = append(yt, plot.Tick{Value: float64(k - 1 - c), Label: m.Classes[c]})
	}
	cellFont := fontOf(math.Max(9, math.Min(14, 140/float64(k))))
	for t := 0; t < k; t++ {
		for c := 0; c < k; c++ {
			xy = append(xy, plotter.XY{X: float64(c), Y: float64(k - 1 - t)})
			labels = append(labels, fmt.Sprint(m.Confusion[t][c]))
			col := color.Color(color.Black)
			if ratio(m.Confusion[t][c], m.PerClass[t].Support) > 0.5 {
				col = color.White
			}
			styles = append(styles, text.Style{Color: col, Font: cellFont, XAlign: text.XCenter, YAlign: text.YCenter, Handler: p.TextHandler})
		}
	}
	lab, err := plotter.NewLabels(plotter.XYLabels{XYs: xy, Labels: labels})
	if err != nil {
		return fmt.Errorf("plot %s: %w", path, err)
	}
	lab.TextStyle = styles
	p.Add(lab)
	p.X.Tick.Marker = plot.ConstantTicks(xt)
	p.Y.Tick.Marker = plot.ConstantTicks(yt)
	p.X.Tick.Label.Rotation = math.Pi / 6
	p.X.Tick.Label.XAlign = text.XRight
	p.X.Tick.Label.YAlign = text.YCenter
	p.X.Min, p.X.Max = -0.5, float64(k)-0.5
	p.Y.Min, p.Y.Max = -0.5, float64(k)-0.5
	side := max(500, min(1600, 80*k+220))
	return savePNG(path, side+40, side, func(dc draw.Canvas) {
		p.Draw(draw.Crop(dc, px(10), px(-30), px(10), px(-10)))
	})
}

// PlotMisclassified draws misclassified.png: a grid of up to max test
// images the model got wrong (in test-set order), each upscaled 4× with
// nearest-neighbour (the pixels the model saw) and captioned
// "true → predicted" and its test index. images holds N×h×w×c uint8 in
// HWC order (c = 3 RGB or 1 grey), N = len(labels) = len(preds). With no
// errors the image says so.
func PlotMisclassified(path string, images []uint8, h, w, c int, labels, preds []int, classNames []string, max int) error {
	if len(labels) != len(preds) {
		return fmt.Errorf("plot %s: %d labels but %d predictions", path, len(labels), len(preds))
	}
	if h <= 0 || w <= 0 || (c != 1 && c != 3) {
		return fmt.Errorf("plot %s: image shape %dx%dx%d, want h, w > 0 and 1 or 3 channels", path, h, w, c)
	}
	if len(images) != len(labels)*h*w*c {
		return fmt.Errorf("plot %s: %d image bytes for %d images of %dx%dx%d", path, len(images), len(labels), h, w, c)
	}
	if max <= 0 {
		return errors.New("plot " + path + ": max must be positive")
	}
	name := func(i int) string {
		if i >= 0 && i < len(classNames) {
			return classNames[i]
		}
		return fmt.Sprint(i)
	}
	var wrong []int
	errs := 0
	for i := range labels {
		if labels[i] != preds[i] {
			errs++
			if len(wrong) < max {
				wrong = append(wrong, i)
			}
		}
	}
	const scale, pad, capH, titleH = 4, 14, 40, 50
	cellW, cellH := w*scale+pad, h*scale+capH+pad/2
	cols := min(8, len(wrong))
	cols = maxInt(cols, 1)
	rows := maxInt((len(wrong)+cols-1)/cols, 1)
	W := maxInt(cols*cellW+pad, 600)
	H := maxInt(titleH+rows*cellH+pad, 300)
	x0 := (W - cols*cellW) / 2
	return savePNG(path, W, H, func(dc draw.Canvas) {
		top := dc.Max.Y
		title := text.Style{Color: color.Black, Font: fontOf(18), XAlign: text.XCenter, YAlign: text.YCenter, Handler: plot.DefaultTextHandler}
		msg := fmt.Sprintf("Misclassified test images: %d shown of %d errors (%d images)", len(wrong), errs, len(labels))
		if errs == 0 {
			msg = fmt.Sprintf("No misclassified images among %d test images", len(labels))
		}
		dc.FillText(title, vg.Point{X: dc.Min.X + px(float64(W)/2), Y: top - px(titleH/2)}, msg)
		for n, idx := range wrong {
			r, col := n/cols, n%cols
			left := float64(x0 + col*cellW + pad/2)
			imgTop := float64(titleH + r*cellH)
			im := upscale(images[idx*h*w*c:(idx+1)*h*w*c], h, w, c, scale)
			rect := vg.Rectangle{
				Min: vg.Point{X: dc.Min.X + px(left), Y: top - px(imgTop+float64(h*scale))},
				Max: vg.Point{X: dc.Min.X + px(left+float64(w*scale)), Y: top - px(imgTop)},
			}
			dc.DrawImage(rect, im)
			cx := dc.Min.X + px(left+float64(w*scale)/2)
			capt := name(labels[idx]) + " → " + name(preds[idx])
			size := 13.0
			sty := text.Style{Color: color.Black, Font: fontOf(size), XAlign: text.XCenter, YAlign: text.YTop, Handler: plot.DefaultTextHandler}
			if tw := sty.Width(capt); tw > px(float64(cellW-4)) {
				sty.Font = fontOf(size * float64(px(float64(cellW-4))/tw))
			}
			dc.FillText(sty, vg.Point{X: cx, Y: top - px(imgTop+float64(h*scale)+4)}, capt)
			grey := text.Style{Color: color.Gray{110}, Font: fontOf(11), XAlign: text.XCenter, YAlign: text.YTop, Handler: plot.DefaultTextHandler}
			dc.FillText(grey, vg.Point{X: cx, Y: top - px(imgTop+float64(h*scale)+22)}, fmt.Sprintf("test #%d", idx))
		}
	})
}

func maxInt(a, b int) int {
	if a > b {
		return a
	}
	return b
}

// upscale turns one HWC image into an RGBA image scale× larger by pixel
// replication.
func upscale(p []uint8, h, w, c, scale int) image.Image {
	im := image.NewRGBA(image.Rect(0, 0, w*scale, h*scale))
	for y := 0; y < h*scale; y++ {
		for x := 0; x < w*scale; x++ {
			i := ((y/scale)*w + x/scale) * c
			o := im.PixOffset(x, y)
			if c == 1 {
				im.Pix[o], im.Pix[o+1], im.Pix[o+2] = p[i], p[i], p[i]
			} else {
				im.Pix[o], im.Pix[o+1], im.Pix[o+2] = p[i], p[i+1], p[i+2]
			}
			im.Pix[o+3] = 255
		}
	}
	return im
}
