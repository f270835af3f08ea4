// Package pixels holds labelled images in memory: uint8 pixels in NHWC
// order and one class index per image, the one container that data
// loading, augmentation and training share.
package pixels

// Set is n images of H×W×C bytes each (NHWC) with their labels.
type Set struct {
	// Images holds Len() images of H×W×C bytes each, NHWC.
	Images []uint8
	// Labels holds one class index per image.
	Labels []uint8
	// H, W, C are the image height, width and channel count.
	H, W, C int
}

// Len is the number of images (0 for a nil Set).
func (s *Set) Len() int {
	if s == nil {
		return 0
	}
	return len(s.Labels)
}

// ImageSize is H·W·C, the bytes of one image.
func (s *Set) ImageSize() int { return s.H * s.W * s.C }

// Image returns image i (H×W×C bytes, HWC); it shares memory with s.
func (s *Set) Image(i int) []uint8 {
	n := s.ImageSize()
	return s.Images[i*n : (i+1)*n : (i+1)*n]
}

// Slice returns images lo..hi-1 as a Set sharing memory with s.
func (s *Set) Slice(lo, hi int) *Set {
	n := s.ImageSize()
	return &Set{Images: s.Images[lo*n : hi*n : hi*n], Labels: s.Labels[lo:hi:hi], H: s.H, W: s.W, C: s.C}
}
