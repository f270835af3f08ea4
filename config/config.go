// Package config defines the typed configuration of a pipeline run and loads
// it from YAML with viper, strictly: unknown keys, wrong types and invalid
// values are errors that name the file and the key.
package config

// Config is one pipeline run: data, model, training, augmentation, runtime
// and output. Its zero value is not useful; start from Default.
type Config struct {
	// Name labels the run in logs and artifacts.
	Name string `mapstructure:"name" yaml:"name" json:"name,omitempty"`
	// Seed seeds weight initialisation, shuffling, dropout and augmentation.
	Seed int64 `mapstructure:"seed" yaml:"seed"`

	Data    Data    `mapstructure:"data" yaml:"data"`
	Model   Model   `mapstructure:"model" yaml:"model"`
	Train   Train   `mapstructure:"train" yaml:"train"`
	Augment Augment `mapstructure:"augment" yaml:"augment"`
	Runtime Runtime `mapstructure:"runtime" yaml:"runtime"`
	Output  Output  `mapstructure:"output" yaml:"output"`
	// Evaluate configures the test-set evaluation.
	Evaluate Evaluate `mapstructure:"evaluate" yaml:"evaluate"`

	// Source is the file the config came from, for errors that name a line.
	Source Source `mapstructure:"-" yaml:"-"`
}

// Data says where CIFAR-10 comes from and how it is split.
type Data struct {
	// Dir is a local directory holding cifar-10-batches-bin/ (or being it).
	// Empty means: the cache, then the official archive, then the npm mirror.
	Dir string `mapstructure:"dir" yaml:"dir"`
	// CacheDir overrides the cache (default $XDG_CACHE_HOME/cifar-pipeline).
	CacheDir string `mapstructure:"cache_dir" yaml:"cache_dir"`
	// Offline forbids network access: only Dir and the cache are used.
	Offline bool `mapstructure:"offline" yaml:"offline"`
	// Synthetic, when Train > 0, generates a learnable CIFAR-format set
	// instead of reading CIFAR-10 (tests and smoke runs).
	Synthetic Synthetic `mapstructure:"synthetic" yaml:"synthetic"`
	// LimitTrain and LimitTest keep only the first N images (0 = all).
	LimitTrain int `mapstructure:"limit_train" yaml:"limit_train"`
	LimitTest  int `mapstructure:"limit_test" yaml:"limit_test"`
	// ValidationSplit is Keras's validation_split: the last fraction of the
	// training arrays, taken before shuffling.
	ValidationSplit float64 `mapstructure:"validation_split" yaml:"validation_split"`
	// Validation is "split" (ValidationSplit of train) or "test" (the test
	// set, as the notebook's augmented run does), or "none".
	Validation string `mapstructure:"validation" yaml:"validation"`
	// Normalize divides pixels by 255 inside the graph (the notebook does;
	// its augmented cell forgot to, see augment.normalize_fix).
	Normalize bool `mapstructure:"normalize" yaml:"normalize"`
	// Mean and Std, when set (one value per channel), standardise the
	// input after Normalize: (x − mean) / std, inside the graph (training,
	// evaluation and the SavedModel alike).
	Mean []float64 `mapstructure:"mean" yaml:"mean,omitempty"`
	Std  []float64 `mapstructure:"std" yaml:"std,omitempty"`
	// Classes is the number of classes (CIFAR-10: 10).
	Classes int `mapstructure:"classes" yaml:"classes"`
	// ImageShape is height, width, channels.
	ImageShape []int `mapstructure:"image_shape" yaml:"image_shape"`
}

// Synthetic sizes a generated dataset.
type Synthetic struct {
	Train int `mapstructure:"train" yaml:"train"`
	Test  int `mapstructure:"test" yaml:"test"`
}

// Model is the network: a list of layers. A layer without inputs takes the
// previous layer's output (the model input for the first), so a plain list
// is a Keras Sequential; inputs naming earlier layers make a functional
// model (a DAG, with merge layers taking several inputs). The last layer is
// the model's output.
type Model struct {
	Layers []Layer `mapstructure:"layers" yaml:"layers"`
}

// InputName names the model input in a layer's inputs list.
const InputName = "input"

// Layer is one Keras layer: its kind, name, inputs, and the kind's Keras
// arguments (filters, kernel_size, units, activation, ...). The engine's
// layer registry, not this package, knows which arguments each kind takes.
type Layer struct {
	// Type is the layer kind in Keras's snake case: conv2d, dense,
	// batch_normalization, add, ... (graph's layer registry lists them).
	Type string `mapstructure:"type" yaml:"type"`
	// Name overrides the Keras auto-name (conv2d, conv2d_1, dense, ...).
	Name string `mapstructure:"name" yaml:"name,omitempty"`
	// Inputs names the layers (or "input") feeding this one; empty means
	// the previous layer.
	Inputs []string `mapstructure:"inputs" yaml:"inputs,omitempty"`
	// Trainable false freezes the layer's weights, Keras's base Layer
	// argument (nil: trainable).
	Trainable *bool `mapstructure:"trainable" yaml:"trainable,omitempty"`
	// Args are the remaining keys: the kind's Keras arguments.
	Args map[string]any `mapstructure:",remain" yaml:",inline"`
}

// Train configures compile + fit.
type Train struct {
	BatchSize int    `mapstructure:"batch_size" yaml:"batch_size"`
	Epochs    int    `mapstructure:"epochs" yaml:"epochs"`
	Shuffle   bool   `mapstructure:"shuffle" yaml:"shuffle"`
	Loss      string `mapstructure:"loss" yaml:"loss"`
	// Callbacks are Keras callback equivalents (package callback):
	// reduce_lr_on_plateau, early_stopping, best_checkpoint,
	// terminate_on_nan, each a mapping of Keras's arguments.
	Callbacks map[string]any `mapstructure:"callbacks" yaml:"callbacks,omitempty"`
	// LabelSmoothing is categorical_crossentropy's label_smoothing (Keras):
	// targets onehot·(1−ls) + ls/classes. 0 is off.
	LabelSmoothing float64 `mapstructure:"label_smoothing" yaml:"label_smoothing"`
	// StepsPerEpoch caps the steps of an epoch (0 = a full pass, as it
	// should be; the notebook's 390 on a 391-batch stream is a bug).
	StepsPerEpoch int       `mapstructure:"steps_per_epoch" yaml:"steps_per_epoch"`
	Optimizer     Optimizer `mapstructure:"optimizer" yaml:"optimizer"`
	// Verbose is auto (progress bar on a terminal, a line per epoch
	// otherwise), bar, line or none.
	Verbose string `mapstructure:"verbose" yaml:"verbose"`
}

// Optimizer names a Keras 3 optimiser and its arguments (learning_rate,
// rho, momentum, ...). Which arguments apply, and their defaults, belong to
// the optimiser (graph's optimizer registry); a key the chosen optimiser
// does not take is an error there.
type Optimizer struct {
	// Name is rmsprop, sgd, adam, ... (graph's optimizer registry lists them).
	Name string `mapstructure:"name" yaml:"name"`
	// Args are the remaining keys: the optimiser's Keras arguments.
	Args map[string]any `mapstructure:",remain" yaml:",inline"`
}

// Augment mirrors Keras's ImageDataGenerator arguments, adds the modern
// CIFAR-10 training augmentations (Crop, Flip, Cutout), and sizes the stream
// that feeds training. Enabled gates the whole section: when false no
// augmentation of either family runs, whatever the other keys say. When
// both families are set they compose, per image in this order: the
// ImageDataGenerator warp and point ops, then crop, flip, cutout; the one
// combination rejected is Flip with HorizontalFlip (two flips).
type Augment struct {
	Enabled          bool    `mapstructure:"enabled" yaml:"enabled"`
	RotationRange    float64 `mapstructure:"rotation_range" yaml:"rotation_range"`
	WidthShiftRange  float64 `mapstructure:"width_shift_range" yaml:"width_shift_range"`
	HeightShiftRange float64 `mapstructure:"height_shift_range" yaml:"height_shift_range"`
	ShearRange       float64 `mapstructure:"shear_range" yaml:"shear_range"`
	// ZoomRange is Keras's zoom_range: one value z means [1-z, 1+z], two
	// values are the bounds; empty means no zoom.
	ZoomRange         []float64 `mapstructure:"zoom_range" yaml:"zoom_range"`
	ChannelShiftRange float64   `mapstructure:"channel_shift_range" yaml:"channel_shift_range"`
	BrightnessRange   []float64 `mapstructure:"brightness_range" yaml:"brightness_range"`
	HorizontalFlip    bool      `mapstructure:"horizontal_flip" yaml:"horizontal_flip"`
	VerticalFlip      bool      `mapstructure:"vertical_flip" yaml:"vertical_flip"`
	FillMode          string    `mapstructure:"fill_mode" yaml:"fill_mode"`
	Cval              float64   `mapstructure:"cval" yaml:"cval"`
	// Crop is the random crop after padding (padding 0 = none).
	Crop Crop `mapstructure:"crop" yaml:"crop"`
	// Flip is the modern horizontal flip: "none", "random" (p = 0.5 per
	// image and epoch) or "alternate" (airbench's derandomised flip: each
	// image flipped on every other epoch, with a per-image random phase).
	// HorizontalFlip is ImageDataGenerator's and stays separate.
	Flip string `mapstructure:"flip" yaml:"flip"`
	// Cutout erases squares (DeVries & Taylor 2017; size 0 = none).
	Cutout Cutout `mapstructure:"cutout" yaml:"cutout"`
	// Workers producing augmented batches (0 = cores not used by TF).
	Workers int `mapstructure:"workers" yaml:"workers"`
	// QueueBatches bounds how many batches are prepared ahead.
	QueueBatches int `mapstructure:"queue_batches" yaml:"queue_batches"`
	// Materialize, when > 0, expands the training set up front with this
	// many augmented copies (the notebook's xtas list) instead of streaming.
	Materialize int `mapstructure:"materialize" yaml:"materialize"`
	// Preview writes preview JPEGs and a contact sheet.
	Preview Preview `mapstructure:"preview" yaml:"preview"`
}

// Crop pads each side of an image by Padding pixels and takes a random
// window of the original size, offsets uniform over [0, 2·Padding] on each
// axis (He et al. 2016's "4 pixels padded on each side").
type Crop struct {
	// Padding per side in pixels; 0 turns the crop off; must be below the
	// image height and width (reflect needs it, numpy and TF alike).
	Padding int `mapstructure:"padding" yaml:"padding"`
	// Mode is "reflect" (numpy/TF REFLECT, edge pixel not repeated:
	// d c b | a b c d | c b a; the default, as in the fast recipes: Page's
	// ResNet-9 DAWNBench code and airbench pad with reflect) or "constant"
	// (Value everywhere outside; torchvision RandomCrop(32, padding=4)).
	Mode string `mapstructure:"mode" yaml:"mode"`
	// Value is the constant mode's fill, 0..255.
	Value int `mapstructure:"value" yaml:"value"`
}

// Cutout fills Count squares of side Size, each centred at a uniform random
// pixel and clipped at the borders (DeVries & Taylor 2017, "Improved
// Regularization of Convolutional Neural Networks with Cutout").
type Cutout struct {
	// Size is the square's side in pixels; 0 turns cutout off.
	Size int `mapstructure:"size" yaml:"size"`
	// Count is how many squares per image (they may overlap); 0 = none.
	Count int `mapstructure:"count" yaml:"count"`
	// Value is the fill, 0..255. DeVries & Taylor zero the image after
	// mean/std normalisation, i.e. fill with the mean colour; here the
	// pixels are raw uint8, so 0 is black; CIFAR-10's mean is about
	// (125, 123, 114).
	Value int `mapstructure:"value" yaml:"value"`
}

// Preview sizes the augmentation preview.
type Preview struct {
	Enabled bool `mapstructure:"enabled" yaml:"enabled"`
	// Images is how many dataset images are previewed.
	Images int `mapstructure:"images" yaml:"images"`
	// PerImage is how many augmentations each (NUM_TO_AUGMENT).
	PerImage int `mapstructure:"per_image" yaml:"per_image"`
	// Prefix is Keras's save_prefix.
	Prefix string `mapstructure:"prefix" yaml:"prefix"`
}

// Runtime configures the TensorFlow session.
type Runtime struct {
	// IntraOpThreads and InterOpThreads: 0 lets TensorFlow choose.
	IntraOpThreads int `mapstructure:"intra_op_threads" yaml:"intra_op_threads"`
	InterOpThreads int `mapstructure:"inter_op_threads" yaml:"inter_op_threads"`
	// XLA turns on global JIT compilation (CPU included): auto (on when
	// a GPU runs the graph), true or false. The pipeline resolves auto
	// before the run, so config.resolved.yaml holds true or false.
	XLA XLAMode `mapstructure:"xla" yaml:"xla"`
	// Precision is the Keras dtype policy the model computes in: float32,
	// mixed_bfloat16 (bfloat16 compute, float32 variables, loss and
	// optimiser) or mixed_float16 (GPU only, with Keras's dynamic loss
	// scaling).
	Precision string `mapstructure:"precision" yaml:"precision"`
	// TensorFlowLogs shows TensorFlow's own log lines (oneDNN, absl, MLIR),
	// which are hidden by default; the --verbose flag does the same.
	TensorFlowLogs bool `mapstructure:"tensorflow_logs" yaml:"tensorflow_logs"`
	// Device is where the graph runs: auto (the first GPU if TensorFlow
	// sees one, else the CPU), cpu (GPUs hidden), gpu (the first GPU,
	// required) or gpu:N (GPU N, required). See ParseDevice.
	Device string `mapstructure:"device" yaml:"device"`
	// GPUMemoryGrowth makes TensorFlow allocate GPU memory as needed
	// instead of reserving nearly all of it at session start.
	GPUMemoryGrowth bool `mapstructure:"gpu_memory_growth" yaml:"gpu_memory_growth"`
}

// Evaluate configures the test-set evaluation after training.
type Evaluate struct {
	// TTA also measures the test accuracy with flip test-time
	// augmentation (the mean of the outputs on each image and its mirror
	// image), reported beside the plain accuracy in metrics.json.
	TTA bool `mapstructure:"tta" yaml:"tta"`
	// TTATranslate adds airbench's translations to it: the images
	// shifted by this many pixels up-left and down-right, each with its
	// mirror image, weighted a quarter each against the plain pair's half
	// (0: flips only).
	TTATranslate int `mapstructure:"tta_translate" yaml:"tta_translate,omitempty"`
}

// Output says where artifacts go.
type Output struct {
	Dir string `mapstructure:"dir" yaml:"dir"`
	// KeepCheckpoints is how many epoch checkpoints are kept.
	KeepCheckpoints int `mapstructure:"keep_checkpoints" yaml:"keep_checkpoints"`
	// SavedModel exports output/saved_model.
	SavedModel bool `mapstructure:"saved_model" yaml:"saved_model"`
	// Plots writes curves.png, confusion.png and misclassified.png.
	Plots bool `mapstructure:"plots" yaml:"plots"`
	// TensorBoard writes event files under output/logs.
	TensorBoard bool `mapstructure:"tensorboard" yaml:"tensorboard"`
}

// Default returns the notebook's constants: batch 128, 20 epochs, 10
// classes, validation_split 0.2, RMSprop with Keras defaults, 32×32×3
// input, and the notebook's shallow network.
func Default() Config {
	return Config{
		Name: "cifar10",
		Seed: 42,
		Data: Data{
			ValidationSplit: 0.2,
			Validation:      "split",
			Normalize:       true,
			Classes:         10,
			ImageShape:      []int{32, 32, 3},
		},
		Model: Model{Layers: ShallowLayers()},
		Train: Train{
			BatchSize: 128,
			Epochs:    20,
			Shuffle:   true,
			Loss:      "categorical_crossentropy",
			Optimizer: Optimizer{Name: "rmsprop", Args: map[string]any{"learning_rate": 0.001}},
			Verbose:   "auto",
		},
		Runtime: Runtime{Device: "auto", Precision: "float32", XLA: XLAAuto},
		Augment: Augment{
			FillMode:     "nearest",
			Crop:         Crop{Mode: "reflect"},
			Flip:         "none",
			Cutout:       Cutout{Count: 1},
			QueueBatches: 8,
			Preview:      Preview{Images: 10, PerImage: 5, Prefix: "cifar"},
		},
		Output: Output{
			Dir:             "output",
			KeepCheckpoints: 3,
			SavedModel:      true,
			Plots:           true,
			TensorBoard:     true,
		},
	}
}

// ShallowLayers is the notebook's first network (4,200,842 parameters).
func ShallowLayers() []Layer {
	return []Layer{
		{Type: "conv2d", Args: map[string]any{"filters": 32, "kernel_size": []any{3, 3}, "padding": "same"}},
		{Type: "activation", Args: map[string]any{"activation": "relu"}},
		{Type: "max_pooling2d", Args: map[string]any{"pool_size": []any{2, 2}}},
		{Type: "dropout", Args: map[string]any{"rate": 0.25}},
		{Type: "flatten"},
		{Type: "dense", Args: map[string]any{"units": 512}},
		{Type: "activation", Args: map[string]any{"activation": "relu"}},
		{Type: "dropout", Args: map[string]any{"rate": 0.5}},
		{Type: "dense", Args: map[string]any{"units": 10}},
		{Type: "activation", Args: map[string]any{"activation": "softmax"}},
	}
}
