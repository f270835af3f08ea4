package pipeline

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/cifar-pipeline/cifar-pipeline/augment"
	"github.com/cifar-pipeline/cifar-pipeline/config"
	"github.com/cifar-pipeline/cifar-pipeline/dataset"
	"github.com/cifar-pipeline/cifar-pipeline/rundir"
)

func newPreviewCommand() *cobra.Command {
	var cf configFlags
	var images, perImage int
	var out string
	cmd := &cobra.Command{
		Use:   "preview",
		Short: "Write augmentation preview JPEGs and a contact sheet",
		Long: "Augments the first --images training images --per-image times with the config's augment section " +
			"(Keras ImageDataGenerator law) and writes {prefix}_{index}_{hash}.jpeg files plus contact_sheet.png " +
			"to --out (default <output.dir>/preview).",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			sp, err := cf.load(cmd)
			if err != nil {
				return err
			}
			cfg := sp.cfg
			if !cmd.Flags().Changed("images") {
				images = cfg.Augment.Preview.Images
			}
			if !cmd.Flags().Changed("per-image") {
				perImage = cfg.Augment.Preview.PerImage
			}
			if out == "" {
				out = rundir.New(cfg.Output.Dir).Preview()
			}
			if images < 1 || perImage < 1 {
				return fmt.Errorf("preview: --images %d and --per-image %d must both be at least 1", images, perImage)
			}
			set, err := loadData(cmd.Context(), cfg, rundir.New(cfg.Output.Dir), cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			files, sheet, err := writePreviews(cfg, set.Train, out, images, perImage, cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "wrote %d previews to %s and %s\n", len(files), out, sheet)
			return nil
		},
	}
	cf.register(cmd)
	cmd.Flags().IntVar(&images, "images", 0, "how many training images to preview (default augment.preview.images)")
	cmd.Flags().IntVar(&perImage, "per-image", 0, "augmentations per image, NUM_TO_AUGMENT (default augment.preview.per_image)")
	cmd.Flags().StringVar(&out, "out", "", "output directory (default <output.dir>/preview)")
	return cmd
}

// writePreviews augments the first n images of train k times each with the
// config's augment parameters and seed, writing the JPEGs and the contact
// sheet into dir. It serves `pipeline preview` and the preview stage of a
// run (augment.preview.enabled).
func writePreviews(cfg config.Config, train *dataset.Split, dir string, n, k int, log io.Writer) ([]string, string, error) {
	p, err := augment.FromConfig(cfg.Augment)
	if err != nil {
		return nil, "", err
	}
	if p.Identity() {
		fmt.Fprintln(log, "preview: the augment section sets no transform; previews will equal the originals (set e.g. augment.rotation_range)")
	}
	if train == nil || len(train.Labels) == 0 {
		return nil, "", fmt.Errorf("preview: the training set is empty")
	}
	n = min(n, len(train.Labels))
	indices := make([]int, n)
	for i := range indices {
		indices[i] = i
	}
	prefix := cfg.Augment.Preview.Prefix
	if prefix == "" {
		prefix = "cifar"
	}
	files, sheet, err := augment.WritePreviews(dir, train.Images, train.H, train.W, train.C, indices, k, p, cfg.Seed, prefix)
	if err != nil {
		return nil, "", fmt.Errorf("preview %s: %w", dir, err)
	}
	return files, sheet, nil
}
