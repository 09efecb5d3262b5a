package dataset

import (
	"bufio"
	"fmt"
	"io"
	"math/rand/v2"
)

// synthVocab holds the vocabulary of synthetic rows.
type synthVocab struct{ objects, cameras, weather []string }

func newSynthVocab() synthVocab {
	return synthVocab{
		objects: []string{"car", "truck", "bus", "pedestrian", "cyclist", "motorcycle", "traffic_light", "stop_sign"},
		cameras: []string{"front-left", "front-right", "rear", "side-left", "side-right"},
		weather: []string{"clear", "rain", "fog", "snow", "overcast"},
	}
}

// WriteSyntheticJSONL writes rows imageannotation rows of about 410 bytes
// each, deterministic for a seed, with distinct attachment URLs: the
// benchmark dataset of enqueue and of this package.
func WriteSyntheticJSONL(w io.Writer, rows int, seed int64) error {
	bw := bufio.NewWriterSize(w, 64<<10)
	rng := rand.New(rand.NewPCG(uint64(seed), 0x5eed))
	v := newSynthVocab()
	for i := range rows {
		o1, o2, o3 := v.objects[rng.IntN(len(v.objects))], v.objects[rng.IntN(len(v.objects))], v.objects[rng.IntN(len(v.objects))]
		fmt.Fprintf(bw, `{"attachment":"https://img.example.com/fleet/%d/batch-%04d/frame-%09d-%08x.jpg","attachment_type":"image",`+
			`"geometries":{"box":{"objects_to_annotate":["%s","%s","%s"],"min_height":%d,"min_width":%d}},`+
			`"metadata":{"camera":"%s","frame":%d,"source":"fleet-%d","weather":"%s","captured_at":"2026-%02d-%02dT%02d:%02d:%02dZ"},`+
			`"instruction":"Box each listed object.","tags":["synthetic","seed-%d"]}`+"\n",
			seed, i/1000, i, rng.Uint32(), o1, o2, o3, 5+rng.IntN(20), 5+rng.IntN(20),
			v.cameras[rng.IntN(len(v.cameras))], i, rng.IntN(100), v.weather[rng.IntN(len(v.weather))],
			1+rng.IntN(12), 1+rng.IntN(28), rng.IntN(24), rng.IntN(60), rng.IntN(60), seed)
	}
	return bw.Flush()
}

// WriteSyntheticCSV writes the rows of WriteSyntheticJSONL as CSV, with
// dotted metadata columns and a geometries:json column.
func WriteSyntheticCSV(w io.Writer, rows int, seed int64) error {
	bw := bufio.NewWriterSize(w, 64<<10)
	rng := rand.New(rand.NewPCG(uint64(seed), 0x5eed))
	v := newSynthVocab()
	bw.WriteString("attachment,attachment_type,geometries:json,metadata.camera,metadata.frame,metadata.source,metadata.weather,metadata.captured_at,instruction,tags:json\n")
	for i := range rows {
		o1, o2, o3 := v.objects[rng.IntN(len(v.objects))], v.objects[rng.IntN(len(v.objects))], v.objects[rng.IntN(len(v.objects))]
		fmt.Fprintf(bw, `https://img.example.com/fleet/%d/batch-%04d/frame-%09d-%08x.jpg,image,`+
			`"{""box"":{""objects_to_annotate"":[""%s"",""%s"",""%s""],""min_height"":%d,""min_width"":%d}}",`+
			`%s,%d,fleet-%d,%s,2026-%02d-%02dT%02d:%02d:%02dZ,`+
			`Box each listed object.,"[""synthetic"",""seed-%d""]"`+"\n",
			seed, i/1000, i, rng.Uint32(), o1, o2, o3, 5+rng.IntN(20), 5+rng.IntN(20),
			v.cameras[rng.IntN(len(v.cameras))], i, rng.IntN(100), v.weather[rng.IntN(len(v.weather))],
			1+rng.IntN(12), 1+rng.IntN(28), rng.IntN(24), rng.IntN(60), rng.IntN(60), seed)
	}
	return bw.Flush()
}
